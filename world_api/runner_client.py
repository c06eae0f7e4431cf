"""The world service's artifact and runner routes, over a
:class:`~world_api.client.WorldServiceClient` (``routers/artifacts.py``,
``routers/runners.py``).

>>> from world_api.client import WorldServiceClient
>>> c = WorldServiceClient("http://127.0.0.1:9", timeout=1)
>>> artifact(c, "w", "s")
Traceback (most recent call last):
...
world_api.client.UnavailableError: cannot reach the world service at http://127.0.0.1:9: ...
>>> c.close()
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from world_api.client import WorldServiceClient, seg, strategy_path


def put_artifact(c: WorldServiceClient, world: str, doc: dict[str, Any]) -> dict[str, Any]:
    """Store ``doc`` as its strategy's artifact in ``world``; returns its metadata."""
    path, params = strategy_path(world, str(doc["strategy_id"]), "/artifact")
    return c.call(
        "PUT",
        path,
        params=params,
        content=json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
        headers={"content-type": "application/json"},
    )


def artifact(c: WorldServiceClient, world: str, strategy_id: str) -> dict[str, Any]:
    """The strategy's artifact (whole, or its metadata for a role that may not read code)."""
    path, params = strategy_path(world, strategy_id, "/artifact")
    return c.call("GET", path, params=params)


def artifacts(c: WorldServiceClient, world: str) -> list[dict[str, Any]]:
    """Every artifact's metadata."""
    return c.call("GET", f"/worlds/{seg(world)}/artifacts")


def heartbeat(
    c: WorldServiceClient,
    world: str,
    runner: str,
    want: Sequence[str],
    ttl: float,
    report: dict[str, Any],
    running: Sequence[str] = (),
) -> list[str]:
    """Heartbeat as ``runner`` wanting ``want`` and running ``running``; the strategies it
    holds now."""
    body = {"want": list(want), "running": list(running), "ttl": ttl, "report": report}
    out = c.call("POST", f"/worlds/{seg(world)}/runners/{seg(runner)}/heartbeat", json=body)
    return list(out["strategies"])


def leave(c: WorldServiceClient, world: str, runner: str) -> None:
    """``runner`` stops: its leases are freed."""
    c.call("DELETE", f"/worlds/{seg(world)}/runners/{seg(runner)}")


def runners(c: WorldServiceClient, world: str) -> list[dict[str, Any]]:
    """Each runner of ``world`` with its strategies and report."""
    return c.call("GET", f"/worlds/{seg(world)}/runners")
