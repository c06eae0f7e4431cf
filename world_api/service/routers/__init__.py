"""One FastAPI router per resource of the WorldService.

>>> [r.prefix for r in ROUTERS][:2]
['/worlds', '/worlds/{world}/policy']
"""

from __future__ import annotations

from fastapi import APIRouter

from world_api.service.routers import (
    activation,
    allocations,
    artifacts,
    audit,
    book,
    by_id,
    events,
    health,
    market,
    metrics,
    overrides,
    owners,
    policy,
    runners,
    stages,
    strategies,
    world_returns,
    worlds,
)
from world_api.service.strict_json import strict_routes

ROUTERS: list[APIRouter] = [
    worlds.router,
    policy.router,
    market.router,
    metrics.router,
    strategies.router,
    activation.router,
    allocations.router,
    audit.router,
    events.router,
    world_returns.router,
    book.router,
    overrides.router,
    health.router,
    stages.router,
    owners.router,
    artifacts.router,
    runners.router,
]
by_id.normalized(ROUTERS)  # per-strategy routes look ids up in NFC
ROUTERS.append(by_id.twins(ROUTERS))  # and have ?id= twins (by_id.py)
strict_routes(ROUTERS)  # a JSON body may not repeat a key (strict_json.py)
"""Every router, in the order the app mounts them."""
