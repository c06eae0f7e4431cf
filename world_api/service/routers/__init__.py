"""One FastAPI router per resource of the WorldService.

>>> [r.prefix for r in ROUTERS][:2]
['/worlds', '/worlds/{world}/policy']
"""

from __future__ import annotations

from fastapi import APIRouter

from world_api.service.routers import (
    activation,
    allocations,
    audit,
    events,
    health,
    metrics,
    overrides,
    policy,
    stages,
    strategies,
    world_returns,
    worlds,
)

ROUTERS: list[APIRouter] = [
    worlds.router,
    policy.router,
    metrics.router,
    strategies.router,
    activation.router,
    allocations.router,
    audit.router,
    events.router,
    world_returns.router,
    overrides.router,
    health.router,
    stages.router,
]
"""Every router, in the order the app mounts them."""
