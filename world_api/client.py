"""A small HTTP client of the WorldService, shared by ``qmtl submit`` and ``qmtl world``.

>>> WorldServiceError("x").args
('x',)
"""

from __future__ import annotations

from typing import Any

from qmtl.core.errors import QmtlError


class WorldServiceError(QmtlError, RuntimeError):
    """The world service could not be reached, or answered with an error (message says)."""


class WorldServiceClient:
    """JSON calls to a WorldService at ``url`` with an optional bearer ``token``; errors
    become :class:`WorldServiceError` with the service's own ``detail``."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        import httpx

        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._httpx = httpx
        self._client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def call(self, method: str, path: str, **kw: Any) -> Any:
        """Send one request; return the decoded JSON body (None when empty)."""
        try:
            r = self._client.request(method, path, **kw)
        except self._httpx.HTTPError as exc:
            raise WorldServiceError(
                f"cannot reach the world service at {self.url}: {exc}"
            ) from None
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            raise WorldServiceError(f"{method} {path}: {r.status_code}: {detail}")
        return r.json() if r.content else None

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
