"""Where ``qmtl.submit`` sends its updates: a WorldService over HTTP, or a world evaluated
in process (``validate``, ``--dry-run``).

>>> LocalWorld("top_k: 2").engine.policy.top_k
2
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from qmtl.core.contracts import MetricsUpdate
from qmtl.core.errors import QmtlError
from world_api import client as world_client
from world_api import runner_client
from world_api.domain import evaluator
from world_api.domain import policy as world_policy


class SubmitError(QmtlError, RuntimeError):
    """The world could not be reached or refused the submission (the message says why)."""


class WorldClient(Protocol):
    """Where updates go and decisions come from: a world over HTTP, or one in process."""

    capital: float

    def post(self, updates: list[MetricsUpdate]) -> None:
        """Send metric updates."""

    def decision(self, strategy_id: str) -> dict[str, Any]:
        """The world's view of a strategy (status, weight, rank, hints, ...)."""

    def world_metrics(self) -> dict[str, Any] | None:
        """The world's ``{"realized": {...}, "pro_forma": {"n_bars", "metrics"}}`` (None when
        the world cannot say)."""

    def store_artifact(self, doc: dict[str, Any]) -> None:
        """Store the strategy's artifact (``qmtl.artifact``) with the world."""


class HttpWorld:
    """A WorldService over HTTP (``url``, bearer ``token``); its errors become
    :class:`SubmitError` with the service's explanation.

    >>> HttpWorld("demo", "http://127.0.0.1:9", timeout=1)
    Traceback (most recent call last):
    ...
    qmtl.submit_worlds.SubmitError: cannot reach the world service at http://127.0.0.1:9: ...
    """

    def __init__(self, world: str, url: str, token: str | None = None, timeout: float = 30) -> None:
        self._errors = world_client.WorldServiceError
        self.world = world
        self._client = world_client.WorldServiceClient(url, token, timeout)
        try:
            self.capital = float(self._call(self._client.world, world)["capital"])
        except BaseException:
            self._client.close()
            raise

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except self._errors as exc:
            raise SubmitError(str(exc)) from None

    def post(self, updates: list[MetricsUpdate]) -> None:
        """POST the updates as one batch."""
        self._call(self._client.post_metrics, self.world, updates)

    def decision(self, strategy_id: str) -> dict[str, Any]:
        """GET the strategy's view."""
        return self._call(self._client.strategy, self.world, strategy_id)

    def world_metrics(self) -> dict[str, Any] | None:
        """GET the world's realized and pro forma metrics (None from a service older than
        the world's own return)."""
        try:
            return self._client.world_metrics(self.world)
        except self._errors as exc:
            if exc.status in (404, 405):  # the world is there (see __init__): the route is not
                return None
            raise SubmitError(str(exc)) from None

    def store_artifact(self, doc: dict[str, Any]) -> None:
        """PUT the strategy's artifact (after its updates: the world knows its owner)."""
        self._call(runner_client.put_artifact, self._client, self.world, doc)

    def market(self) -> dict[str, Any] | None:
        """The world's market (``{world, version, market, summary}``), None without one."""
        try:
            return self._client.market(self.world)
        except self._errors as exc:
            if exc.status == 404:
                return None
            raise SubmitError(str(exc)) from None

    def policy_text(self) -> str:
        """The world's current policy as JSON."""
        return json.dumps(self._call(self._client.policy, self.world)["policy"])

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()


class LocalWorld:
    """A world evaluated in process from a policy (for ``validate`` and ``--dry-run``).

    >>> LocalWorld("top_k: 3").engine.policy.top_k
    3
    """

    def __init__(self, policy: Any, capital: float = 1_000_000.0) -> None:
        self.capital = capital
        self.artifact: dict[str, Any] | None = None
        p = (policy if isinstance(policy, world_policy.Policy)
             else world_policy.parse_policy(policy or "{}"))
        self.engine = evaluator.WorldEngine(p)

    def store_artifact(self, doc: dict[str, Any]) -> None:
        """Keep the artifact (a local world runs nothing)."""
        self.artifact = doc

    def post(self, updates: list[MetricsUpdate]) -> None:
        """Ingest the updates."""
        for u in updates:
            self.engine.ingest(u)

    def decision(self, strategy_id: str) -> dict[str, Any]:
        """The local engine's view."""
        return self.engine.view(strategy_id).model_dump()

    def world_metrics(self) -> dict[str, Any]:
        """The local engine's realized and pro forma metrics."""
        return self.engine.world_metrics()
