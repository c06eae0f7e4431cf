"""``qmtl world evaluate W``: the world's evaluator, a worker next to the service that
backtests every artifact a world holds on the world's market and writes each backtest
record itself (policy ``evaluation: world``; see ``docs/world.md``, "World-side evaluation").

One pass (:meth:`Evaluator.step`): read the world's market (``GET /worlds/W/market``: its
universe, interval, window, execution rule and costs, and the catalog it names, or
``--data``) and its artifacts (a ``runner`` or ``operator`` token reads them whole); rebuild
each strategy from the stored text and check its graph id (``qmtl.artifact.verify``); put the
market's execution rule and cost on it; and run all those not evaluated yet **in one flow**
(:func:`qmtl.sweep_many`: shared nodes are computed once), on the market's window. Each
strategy's record is posted as one MetricsUpdate (mode ``backtest``, all its returns, the
dataset fingerprint of the bars the flow read, ``symbols``), in one request: the world
stores it whole or not at all, and re-checks its metrics from its returns.

What an evaluation is: :func:`world_api.domain.evaluation.eval_key` of the artifact id, the
market version and the data's version (per symbol, the catalog's first and last bar and row
count). Its run id is derived from that key (``evaluation.run_id``) and its seq is 1, so a
repost is a duplicate the world skips; the evaluator remembers what it posted in
``STATE/evaluated.json`` (written atomically after each post). A restart therefore redoes
nothing finished and, at worst, reposts one record the world drops as a duplicate.

Rolling (§3): new bars in the catalog change the data's version, so every artifact has a new
key and the next pass re-evaluates them all, on the new window (``last_bars`` windows move
with the data), in one flow; ``--every S`` runs a pass every S seconds. Each evaluation is
reported (:class:`Evaluation`, one JSON line from the CLI).

>>> EvaluatorOptions(world="w", url="http://h").state_file.name
'evaluated.json'
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from connectors.data.catalog import Catalog
from qmtl.artifact import ArtifactError, verify
from qmtl.core.contracts import MetricsUpdate, timed_returns
from qmtl.core.errors import QmtlError
from qmtl.core.fingerprint import dataset_fingerprint
from qmtl.strategy import Strategy
from qmtl.sweep import sweep_many
from world_api import runner_client as rc
from world_api.client import NotFoundError, WorldServiceClient
from world_api.domain.evaluation import eval_key, run_id
from world_api.domain.market import Market, outside, parse_market


class EvaluateError(QmtlError):
    """The evaluator cannot evaluate the world at all (no market, no data)."""


@dataclass
class EvaluatorOptions:
    """Which world, where its service is, the token (runner or operator), the catalog
    (default: the one the market names) and the evaluator's state folder (default
    ``~/.qmtl/evaluator/WORLD``)."""

    world: str
    url: str
    token: str | None = None
    data: Path | None = None
    state_dir: Path | None = None

    @property
    def state_file(self) -> Path:
        """Where the evaluations done are remembered."""
        base = self.state_dir or Path.home() / ".qmtl" / "evaluator" / self.world
        return Path(base) / "evaluated.json"


@dataclass
class Evaluation:
    """One evaluation: the strategy, its artifact, the key, what the world was told (or why
    it was not: ``error``).

    >>> Evaluation("s", "a", "k", "r").to_json()["strategy_id"]
    's'
    """

    strategy_id: str
    artifact_id: str
    key: str
    run_id: str
    n_bars: int = 0
    first: int | None = None
    last: int | None = None
    fingerprint: str | None = None
    sharpe: float | None = None
    error: str | None = None
    # the world's events the record caused: a change of decision, with its reason
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serializable form."""
        return asdict(self)


def window_bounds(market: Market, catalog: Catalog) -> tuple[str | int | None, str | int | None]:
    """``(start, end)`` for the market's window on ``catalog``'s bars, as ``qmtl run
    --start/--end`` takes them: the fixed dates, the first and last of the ``last_bars``
    latest bar times of the universe (ns), or all bars (None, None).

    >>> m = parse_market("universe: {symbols: [A]}\\nwindow: {start: 2020-01-01, end: 2020-06-30}")
    >>> window_bounds(m, Catalog("/nonexistent"))
    ('2020-01-01', '2020-06-30')
    """
    w = market.window
    if w is None:
        return None, None
    if w.last_bars is None:
        return str(w.start), str(w.end)
    times = [
        catalog.read_column(s, market.interval, "ts")
        for s in market.universe.symbols
        if catalog.coverage(s, market.interval) is not None
    ]
    if not times:
        return None, None
    ts = np.unique(np.concatenate(times))
    return int(ts[max(0, len(ts) - w.last_bars)]), int(ts[-1])


def data_version(market: Market, catalog: Catalog) -> str:
    """The data's version before a run: per symbol of the universe, the catalog's first and
    last bar time and rows (new bars change it; a full fingerprint comes from the run)."""
    cover = {s: catalog.coverage(s, market.interval) for s in market.universe.symbols}
    text = json.dumps(cover, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Evaluator:
    """The world's evaluator (see the module docstring)."""

    def __init__(self, options: EvaluatorOptions) -> None:
        self.o = options
        self.client = WorldServiceClient(options.url, options.token)
        self.done: dict[str, dict[str, Any]] = self._load()

    def _load(self) -> dict[str, dict[str, Any]]:
        f = self.o.state_file
        if not f.is_file():
            return {}
        return dict(json.loads(f.read_text()))

    def _save(self) -> None:
        f = self.o.state_file
        f.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=f.parent, prefix=".evaluated.")
        with os.fdopen(fd, "w") as out:
            json.dump(self.done, out, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, f)

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()

    def market(self) -> tuple[int, Market]:
        """The world's market and its version (EvaluateError when it has none)."""
        try:
            got = self.client.market(self.o.world)
        except NotFoundError:
            raise EvaluateError(
                f"world {self.o.world!r} has no market: the evaluator needs one "
                "(`qmtl world market set` / PUT /worlds/{id}/market)"
            ) from None
        return int(got["version"]), parse_market(got["market"])

    def catalog(self, market: Market) -> Catalog:
        """The catalog the bars come from: ``--data``, else the market's."""
        if self.o.data is not None:
            return Catalog(self.o.data)
        if market.source is not None and market.source.catalog is not None:
            return Catalog(market.source.catalog)
        raise EvaluateError(f"world {self.o.world!r}'s market names no catalog: pass --data")

    def step(self) -> list[Evaluation]:
        """One pass: evaluate every artifact not evaluated on this market and data (see the
        module docstring); the evaluations done (and refused) in this pass."""
        version, market = self.market()
        catalog = self.catalog(market)
        dv = data_version(market, catalog)
        start, end = window_bounds(market, catalog)
        todo: list[tuple[Evaluation, Strategy]] = []
        out: list[Evaluation] = []
        workdir = self.o.state_file.parent / "artifacts"
        for meta in rc.artifacts(self.client, self.o.world):
            aid = str(meta["artifact_id"])
            key = eval_key(aid, version, dv)
            if key in self.done:
                continue
            # an error of the service is not the artifact's: it propagates (nothing noted)
            doc = rc.artifact(self.client, self.o.world, str(meta["strategy_id"]))
            aid = str(doc.get("id", aid))  # replaced since the list: evaluate what was read
            key = eval_key(aid, version, dv)
            if key in self.done:
                continue
            ev = Evaluation(str(meta["strategy_id"]), aid, key, run_id(aid, key))
            try:
                s = verify(doc, workdir)
            except (ArtifactError, QmtlError, OSError) as exc:
                ev.error = str(exc)
                out.append(ev)
                continue
            symbols = list(doc["data"]["symbols"]) or list(market.universe.symbols)
            extra = outside(market, symbols)
            if extra or s.interval != market.interval:
                ev.error = (
                    f"symbols outside the market's universe: {', '.join(extra)}"
                    if extra
                    else f"interval {s.interval} is not the market's {market.interval}"
                )
                out.append(ev)
                continue
            s.symbols = symbols  # type: ignore[misc]
            apply_market(s, market)
            todo.append((ev, s))
        if todo:
            out += self._run(todo, catalog, start, end)
        for ev in out:
            if ev.error is not None:  # remembered too: an artifact that fails fails again
                self.done[ev.key] = ev.to_json()
        self._save()
        return out

    def _run(
        self,
        todo: list[tuple[Evaluation, Strategy]],
        catalog: Catalog,
        start: str | int | None,
        end: str | int | None,
    ) -> list[Evaluation]:
        try:
            res = sweep_many([s for _, s in todo], data=catalog, start=start, end=end)
        except QmtlError as exc:  # one strategy (or the data) failed: each alone says which
            if len(todo) == 1:
                todo[0][0].error = str(exc)
                return [todo[0][0]]
            return [e for one in todo for e in self._run([one], catalog, start, end)]
        fp = dataset_fingerprint(res.stats.seen, todo[0][1].interval)
        for (ev, s), run in zip(todo, res.runs, strict=True):
            metrics = {k: float(v) for k, v in run.metrics.items() if np.isfinite(v)}
            u = MetricsUpdate(
                world=self.o.world,
                strategy_id=ev.strategy_id,
                run_id=ev.run_id,
                seq=1,
                mode="backtest",
                as_of=int(run.ts[-1]),
                n_bars=run.n_bars,
                metrics=metrics,
                returns=timed_returns(run.ts, run.returns),
                fingerprint=fp,
                symbols=list(s.symbols),
            )
            got = self.client.post_metrics(self.o.world, [u])
            ev.events = [
                {k: e.get(k) for k in ("seq", "active", "weight", "reason", "stage")}
                for e in (got or {}).get("events", [])
            ]
            ev.n_bars, ev.fingerprint = run.n_bars, fp
            ev.first, ev.last = int(run.ts[0]), int(run.ts[-1])
            ev.sharpe = metrics.get("sharpe")
            self.done[ev.key] = ev.to_json()
            self._save()  # after each post: a restart reposts at most this one (a duplicate)
        return [ev for ev, _ in todo]


def apply_market(s: Strategy, market: Market) -> None:
    """Trade ``s`` under the market's execution rule and costs (the world's, not its own).

    >>> from qmtl.alpha.spec import GraphStrategy
    >>> from qmtl.core.expr import col
    >>> s = GraphStrategy(col("close") > 0, symbols=["A"])
    >>> apply_market(s, parse_market("universe: {symbols: [A]}\\nexecution: {cost_bps: 3}"))
    >>> s.cost_bps, s.execution_settings().rule
    (3.0, 'close')
    """
    ex = market.execution
    s.cost_bps = float(ex.cost_bps)
    s.execution = ex.rule  # type: ignore[misc]
    for k in ("spread_bps", "slippage_vol", "vol_window", "no_trade_band", "min_order_notional"):
        setattr(s, k, getattr(ex, k))
