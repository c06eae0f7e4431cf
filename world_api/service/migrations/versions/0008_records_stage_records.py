"""A track record per stage: each stored strategy state (``strategy_state.state``, JSON) gets
``records``, one per stage (backtest, shadow, paper, live; see
``world_api.domain.records``), and ``realized_ts``.

A state stored before has its stage records of migration 0006 (bars per run and latest
metrics, under ``stage.records``) as its records, without returns; a state with none has its
latest metrics and bars as its backtest record. Its ring of returns (one for all modes) has
been realized already: ``realized_ts`` is the ring's last time, so nothing is counted
twice. A state that has ``records`` already is left as it is. Downgrade puts the records'
bars and metrics back under ``stage.records``.

Revision ID: 0008_records
Revises: 0007
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008_records"
down_revision = "0007"
branch_labels = None
depends_on = None

_EMPTY = {"ts_b64": "", "returns_b64": "", "total": 0, "last_seen": None}


def last_time(ts_b64: str | None) -> int | None:
    """The last of a base64 ring of little-endian int64 times (None when empty).

    >>> last_time(base64.b64encode(struct.pack("<2q", 5, 9)).decode()), last_time("")
    (9, None)
    """
    raw = base64.b64decode(ts_b64 or "")
    return struct.unpack("<q", raw[-8:])[0] if len(raw) >= 8 else None


def with_records(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with ``records`` and ``realized_ts`` (see the module docstring).

    >>> s = with_records({"metrics": {"sharpe": 1.0}, "n_bars": 7, "run_bars": {"r": 7}})
    >>> s["records"]["backtest"]["runs"], s["realized_ts"]
    ({'r': 7}, None)
    """
    if "records" in state:
        return state
    out = dict(state)
    stage = out.get("stage")
    stored = stage.get("records") if isinstance(stage, dict) else None
    records: dict[str, Any] = {}
    if stored:
        for mode, rec in stored.items():
            runs = {k: int(v) for k, v in rec.get("runs", {}).items()}
            last = max(runs, key=runs.__getitem__) if runs else None
            records[mode] = {
                "runs": runs,
                "last_run": last,
                "metrics": rec.get("metrics", {}),
                **_EMPTY,
            }
    elif out.get("n_bars") or out.get("metrics"):
        runs = out.get("run_bars") or {"": 0}
        last = max(runs, key=runs.__getitem__)
        records["backtest"] = {
            "runs": {last: int(out.get("n_bars", 0))},
            "last_run": last,
            "metrics": out.get("metrics", {}),
            **_EMPTY,
        }
    out["records"] = records
    out["realized_ts"] = last_time(out.get("ts_b64"))
    if isinstance(stage, dict):
        out["stage"] = {k: v for k, v in stage.items() if k != "records"}
    return out


def without_records(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` as migration 0007 kept it (records' bars and metrics under ``stage``).

    >>> without_records(with_records({"n_bars": 3, "metrics": {}, "run_bars": {"r": 3}}))
    {'n_bars': 3, 'metrics': {}, 'run_bars': {'r': 3}, 'stage': {'records': {'backtest': ...
    """
    out = {k: v for k, v in state.items() if k not in ("records", "realized_ts", "silent")}
    records = state.get("records") or {}
    stage = dict(out.get("stage") or {})
    stage["records"] = {
        m: {"runs": r.get("runs", {}), "metrics": r.get("metrics", {})} for m, r in records.items()
    }
    out["stage"] = stage
    return out


def _rewrite(fn: Any) -> None:
    conn = op.get_bind()
    table = sa.table(
        "strategy_state", sa.column("world"), sa.column("strategy_id"), sa.column("state")
    )
    rows = conn.execute(sa.select(table.c.world, table.c.strategy_id, table.c.state)).all()
    for world, sid, text in rows:
        new = json.dumps(fn(json.loads(text)))
        if new != text:
            conn.execute(
                sa.update(table)
                .where(table.c.world == world, table.c.strategy_id == sid)
                .values(state=new)
            )


def upgrade() -> None:
    _rewrite(with_records)


def downgrade() -> None:
    _rewrite(without_records)
