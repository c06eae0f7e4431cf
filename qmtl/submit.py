"""Submit a strategy to a world: backtest it, stream its metrics, report the world's answer.

``submit`` runs the backtest on the engine and posts each MetricsUpdate to the world as the
engine produces it (not only at the end), then asks the world what it decided and returns a
:class:`qmtl.core.contracts.SubmitResult` with concrete hints. ``validate`` does the same against
a policy evaluated locally (a pre-check: the world's answer is the one that counts).

Updates stream as the replay runs; the final one carries ``fingerprint``, the dataset
fingerprint of every bar the run used (the same as in ``metrics.json``), so the world can tell
which data a result came from. Earlier updates carry none: the dataset is not complete yet.

Where the returns come from, in order: an explicit ``returns=`` series; else a strategy
method ``returns()``, ``equity()`` or ``pnl()`` (pnl is divided by the world's capital); else
they are derived from the strategy's target weights and prices (``auto_returns``: ``True``,
``"simple"``, ``"log"`` or an :class:`AutoReturnsConfig`; ``False`` turns it off; anything
else is refused with an :class:`AutoReturnsError`). ``kind="log"`` says a returns series the
strategy gives (``returns=`` or its ``returns()``) holds log returns: they are sent to the
world as simple returns, ``exp(x) - 1``; derived returns are simple returns either way.
``AutoReturnsConfig(execution=...)`` derives them under that execution rule. If nothing can
give returns the result is ``rejected`` with a hint that says why; so is a backtest whose
data fails (an unknown symbol, an empty range): the hint starts with ``the data failed:``.
After its updates, ``submit`` stores the strategy's artifact with the world
(:mod:`qmtl.artifact`: its spec, or its source files and parameters, and its graph id), what
``qmtl world run`` runs once the world promotes it; the result's ``artifact_id`` names it.
Each return goes to the world with the close time of its bar: a derived return has its
bar's; a given series with a datetime index (a pandas Series) has its index's (naive times
are UTC); a bare series gets bar ``i`` closing ``i + 1`` intervals of the strategy after
the epoch, so bare series line up by position, as they did before returns had times.

The result's ``world_metrics`` are the world's pro forma Sharpe, total return and max
drawdown before the strategy's updates and after them (with ``validate`` or a dry run, of the
local world, which holds only this strategy); a hint says so when the strategy lowers the
world's Sharpe.

>>> import numpy as np
>>> from qmtl import Strategy
>>> from connectors.data.synthetic import generate_bars
>>> class Long(Strategy):
...     symbols = ["A"]
...     def signal(self, bars):
...         return 1.0
>>> res = validate(Long, policy="min_bars: 5000", data={"A": generate_bars(300, seed=2)})
>>> res.status, res.improvement_hints
('rejected', ['only 300 bars < min_bars 5000: extend --start'])
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypedDict

import numpy as np

from dataflows.compiler import OnBad, StrategyOutput
from dataflows.metrics import MetricSet, finite
from qmtl.artifact import ArtifactError, build_artifact
from qmtl.auto_returns import (  # noqa: F401  (re-exported: qmtl.submit's contract)
    AutoReturns,
    AutoReturnsConfig,
    AutoReturnsError,
    auto_returns_config,
)
from qmtl.core.contracts import MetricsUpdate, SubmitResult, timed_returns
from qmtl.core.errors import QmtlError
from qmtl.core.intervals import periods_per_year as default_ppy
from qmtl.given_returns import given_returns
from qmtl.result import ParamValue
from qmtl.runner import backtest, make_strategy
from qmtl.sources import BacktestError, DataSource
from qmtl.strategy import Strategy, default_strategy_id
from qmtl.submit_checks import check_metrics, half_universe, wants_half
from qmtl.submit_evaluated import submit_for_evaluation, world_evaluates
from qmtl.submit_worlds import (  # re-exported
    HttpWorld,
    LocalWorld,
    SubmitError,
    WorldClient,
)
from world_api.domain import world_returns

if TYPE_CHECKING:
    from world_api.domain.policy import Policy

ReturnsArg = Sequence[float] | np.ndarray | None
"""An explicit returns series (one float per period; a pandas Series with a datetime index
gives each its time), or None."""

PolicyArg = str | Path | Mapping[str, object] | None
"""A policy: a path to a YAML/JSON file (a ``Path``, or a str naming an existing file),
YAML/JSON text, a mapping, or a parsed ``Policy``; None: an empty policy."""

CHUNK = 1_000
"""Returns per MetricsUpdate when a returns series is given rather than derived."""


class PolicyFileError(QmtlError, FileNotFoundError):
    """A policy named as a file that does not exist.

    >>> policy_source("examples/no-such-policy.yaml")
    Traceback (most recent call last):
    ...
    qmtl.submit.PolicyFileError: policy file not found: examples/no-such-policy.yaml
    """


class BacktestOptions(TypedDict, total=False):
    """The backtest options ``submit`` and ``validate`` pass on (see :func:`qmtl.backtest`)."""

    data: DataSource
    symbols: Sequence[str] | None
    start: str | int | None
    end: str | int | None
    cost_bps: float | None
    batch_size: int | Sequence[int]
    workers: int
    periods_per_year: float | None
    on_bad_bars: OnBad
    progress: Callable[[int], None] | None
    on_start: Callable[[int], None] | None
    metrics_every: int


def policy_source(policy: PolicyArg | Policy) -> str | Mapping[str, object] | Policy | None:
    """What ``policy`` holds: a file's text when it is a ``Path`` or a str that names an
    existing file (or ends in ``.yaml``, ``.yml`` or ``.json`` and has no line break: then
    the file must exist); else ``policy`` itself (YAML/JSON text, a mapping or a Policy).

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "p.yaml"; _ = f.write_text("min_bars: 5")
    >>> policy_source(str(f)), policy_source(f), policy_source("min_bars: 5")
    ('min_bars: 5', 'min_bars: 5', 'min_bars: 5')
    """
    if isinstance(policy, str) and "\n" not in policy:
        named = Path(policy)
        looks_like_file = named.suffix.lower() in (".yaml", ".yml", ".json")
        if looks_like_file or (len(policy) < 4096 and named.is_file()):
            policy = named
    if isinstance(policy, Path):
        try:
            return policy.read_text()
        except FileNotFoundError:
            raise PolicyFileError(f"policy file not found: {policy}") from None
        except OSError as exc:
            raise PolicyFileError(f"cannot read policy file {policy}: {exc.strerror}") from None
    return policy


DATA_FAILED = "the data failed: "
"""How the hint of a submit rejected because its backtest's data failed begins (the CLI
exits non-zero on it)."""


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: finite(v) for k, v in metrics.items()}


def _run(
    strategy: type[Strategy] | Strategy,
    world_name: str,
    client: WorldClient,
    *,
    strategy_id: str | None,
    returns: ReturnsArg,
    auto_returns: AutoReturns,
    dry_run: bool,
    options: BacktestOptions,
    params: Mapping[str, ParamValue] | None = None,
) -> SubmitResult:
    auto = auto_returns_config(auto_returns)
    s = make_strategy(strategy, params or {})
    sid = strategy_id or default_strategy_id(s)
    run_id = uuid.uuid4().hex[:12]
    seq = 0
    traded = list(options.get("symbols") or s.symbols) or None  # the backtest's universe
    # built before the run, from the code the run uses: what the world evaluates
    artifact, artifact_hint = _artifact(s, sid, options.get("symbols"))

    def make_update(
        n_bars: int, as_of: int, metrics: dict[str, float], rets: np.ndarray | None,
        times: np.ndarray | None,
    ) -> MetricsUpdate:
        nonlocal seq
        seq += 1
        return MetricsUpdate(
            world=world_name,
            strategy_id=sid,
            run_id=run_id,
            seq=seq,
            mode="backtest",
            as_of=as_of,
            n_bars=n_bars,
            metrics=_finite(metrics),
            returns=[] if rets is None or times is None else timed_returns(times, rets),
            symbols=traded,
        )

    def result(
        status: Literal["active", "candidate", "rejected"] | None = None,
        hints: list[str] | None = None,
        metrics: dict[str, float] | None = None,
        n_bars: int = 0,
    ) -> SubmitResult:
        if status is not None:
            return SubmitResult(
                world=world_name,
                strategy_id=sid,
                run_id=run_id,
                status=status,
                metrics=metrics or {},
                contribution=0.0,
                weight=0.0,
                rank=None,
                improvement_hints=hints or [],
                n_bars=n_bars,
                dry_run=dry_run,
            )
        stored = None
        hints = [] if artifact_hint is None else [artifact_hint]
        if artifact is not None:
            try:
                client.store_artifact(artifact)
                stored = artifact["id"]
            except SubmitError as exc:  # the evaluation stands; a runner cannot run it
                hints.append(f"the world did not store the strategy's artifact: {exc}")
        view = client.decision(sid)
        after = client.world_metrics() if before is not None else None
        world = {} if after is None else world_returns.world_change(before, after)
        hints = list(view["hints"]) + hints
        if world and before["pro_forma"]["n_bars"]:
            b, a = world["before"]["sharpe"], world["after"]["sharpe"]
            if a < b:
                hints.append(
                    f"joining lowers the world's pro forma sharpe from {b:.2f} to {a:.2f}")
        return SubmitResult(
            world=world_name,
            strategy_id=sid,
            run_id=run_id,
            status=view["status"],
            metrics=view["metrics"],
            contribution=view["contribution"],
            weight=view["weight"],
            rank=view["rank"],
            improvement_hints=hints,
            n_bars=view["n_bars"],
            dry_run=dry_run,
            world_metrics=world,
            artifact_id=stored,
        )

    before = client.world_metrics()
    given = given_returns(s, returns, client.capital)
    if given is not None:
        times, series = given
        if auto is not None and auto.kind == "log" and (
            returns is not None or callable(getattr(s, "returns", None))
        ):
            series = np.expm1(series)  # log returns in, the world's simple returns out
        if not np.all(np.isfinite(series)):
            bad = int(np.argmax(~np.isfinite(series)))
            return result("rejected", [f"returns[{bad}] is not a finite number"])
        if len(times) > 1 and not np.all(np.diff(times) > 0):
            bad = int(np.argmax(np.diff(times) <= 0)) + 1
            return result("rejected", [f"returns[{bad}]: its time is not after the one before "
                                       "(a returns series' index must strictly increase)"])
        ms = MetricSet(options.get("periods_per_year") or default_ppy(s.interval))
        updates = []
        for lo in range(0, len(series), CHUNK):
            part = series[lo : lo + CHUNK]
            ms.update(part)
            t = times[lo : lo + CHUNK]
            updates.append(make_update(lo + len(part), int(t[-1]), ms.get(), part, t))
        if not updates:
            return result("rejected", ["the returns series is empty"])
        client.post(updates)
        return result()

    if auto is None:
        return result(
            "rejected",
            [
                "no returns: pass returns=..., define returns()/equity()/"
                "pnl() on the strategy, or allow auto_returns"
            ],
        )
    if type(s).signal is Strategy.signal:
        return result(
            "rejected",
            ["no returns: the strategy defines no signal(), returns(), equity() or pnl()"],
        )

    # each update is posted when the next one is made, so that the last one, posted after
    # the replay, can carry the dataset fingerprint (known once every bar has been seen)
    held: list[MetricsUpdate] = []

    def on_output(out: StrategyOutput) -> None:
        if out.metrics is not None:
            if held:
                client.post([held.pop()])
            held.append(make_update(out.n_bars, out.as_of, out.metrics, out.returns_since,
                                    out.returns_ts))

    if auto.execution is not None:
        s.execution = auto.execution
    try:
        ran = backtest(s, on_output=on_output, **options)
    except BacktestError as exc:  # bad data or range: the world hears nothing more of it
        return result("rejected", [f"{DATA_FAILED}{exc}"])
    half_run = None
    if len(ran.symbols) >= 2 and wants_half(client):
        try:  # the same strategy on the documented half of its universe (submit_checks)
            half_opts = {**options, "symbols": half_universe(ran.symbols), "progress": None,
                         "on_start": None}
            half_run = backtest(make_strategy(strategy, params or {}), **half_opts)
        except (BacktestError, QmtlError):
            half_run = None  # the gate then says the metric is missing
    ppy = options.get("periods_per_year") or default_ppy(s.interval)
    if held:
        last = held.pop()
        client.post([last.model_copy(update={
            "fingerprint": ran.data.get("fingerprint"),
            "metrics": {**last.metrics, **check_metrics(ran, half_run, ppy)}})])
    return result()


def _artifact(
    s: Strategy, sid: str, symbols: Sequence[str] | None
) -> tuple[dict[str, object] | None, str | None]:
    """The strategy's artifact, or None and why a runner will not be able to run it (a
    strategy without ``signal`` only reports returns: it has nothing to run, and no hint)."""
    if type(s).signal is Strategy.signal:
        return None, None
    try:
        return build_artifact(s, sid, list(symbols) if symbols else None), None
    except (ArtifactError, QmtlError, OSError) as exc:
        return None, f"no artifact stored, so no runner can run it: {exc}"


def submit(
    strategy: type[Strategy] | Strategy,
    world: str,
    url: str = "http://127.0.0.1:8600",
    token: str | None = None,
    *,
    strategy_id: str | None = None,
    returns: ReturnsArg = None,
    auto_returns: AutoReturns = True,
    dry_run: bool = False,
    data: DataSource = None,
    symbols: Sequence[str] | None = None,
    start: str | int | None = None,
    end: str | int | None = None,
    cost_bps: float | None = None,
    batch_size: int | Sequence[int] = 10_000,
    workers: int = 1,
    periods_per_year: float | None = None,
    on_bad_bars: OnBad = "raise",
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    metrics_every: int = 1_000,
    wait: float = 120.0,
    **params: ParamValue,
) -> SubmitResult:
    """Backtest ``strategy``, stream its metrics to ``world`` at ``url`` and return the world's
    decision.

    The backtest options (``data`` ... ``metrics_every``) are those of :func:`qmtl.backtest`;
    ``params`` override the strategy's parameters. ``strategy_id`` defaults to
    :func:`qmtl.strategy.default_strategy_id` (the class name, with the overridden
    parameters). ``returns`` gives the returns series instead of a backtest (see the module
    docstring), ``auto_returns`` how they are derived when none is given (the module
    docstring says the order: explicit ``returns``, then the strategy's own
    ``returns()``/``equity()``/``pnl()``, then derived). ``dry_run`` evaluates the world's
    policy locally and sends nothing. A world whose policy says ``evaluation: world``
    gets the artifact only and backtests it itself; ``submit`` waits up to ``wait`` seconds
    for its answer (:mod:`qmtl.submit_evaluated`). A backtest whose data fails gives a
    ``rejected`` result whose hint says why; bad arguments raise.
    """
    auto_returns_config(auto_returns)  # refused before any connection
    options = BacktestOptions(
        data=data, symbols=symbols, start=start, end=end, cost_bps=cost_bps,
        batch_size=batch_size, workers=workers, periods_per_year=periods_per_year,
        on_bad_bars=on_bad_bars, progress=progress, on_start=on_start,
        metrics_every=metrics_every,
    )
    remote = HttpWorld(world, url, token)
    try:
        if not dry_run and returns is None and world_evaluates(remote.policy_text()):
            s = make_strategy(strategy, params)  # the world backtests it (submit_evaluated)
            return submit_for_evaluation(s, strategy_id or default_strategy_id(s), world,
                                         remote, symbols, wait, uuid.uuid4().hex[:12])
        client: WorldClient = (
            LocalWorld(remote.policy_text(), capital=remote.capital) if dry_run else remote
        )
        return _run(
            strategy,
            world,
            client,
            strategy_id=strategy_id,
            returns=returns,
            auto_returns=auto_returns,
            dry_run=dry_run,
            options=options,
            params=params,
        )
    finally:
        remote.close()


def validate(
    strategy: type[Strategy] | Strategy,
    policy: PolicyArg | Policy = None,
    *,
    world: str = "local",
    capital: float = 1_000_000.0,
    strategy_id: str | None = None,
    returns: ReturnsArg = None,
    auto_returns: AutoReturns = True,
    data: DataSource = None,
    symbols: Sequence[str] | None = None,
    start: str | int | None = None,
    end: str | int | None = None,
    cost_bps: float | None = None,
    batch_size: int | Sequence[int] = 10_000,
    workers: int = 1,
    periods_per_year: float | None = None,
    on_bad_bars: OnBad = "raise",
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    metrics_every: int = 1_000,
    **params: ParamValue,
) -> SubmitResult:
    """Apply ``policy`` locally and return the same result and hints a world would, without
    touching any world.

    ``policy``: a policy file (a ``Path``, or a str naming an existing file), YAML/JSON
    text, a mapping or a parsed Policy (see :func:`policy_source`). The other arguments are
    those of :func:`submit`.
    """
    options = BacktestOptions(
        data=data, symbols=symbols, start=start, end=end, cost_bps=cost_bps,
        batch_size=batch_size, workers=workers, periods_per_year=periods_per_year,
        on_bad_bars=on_bad_bars, progress=progress, on_start=on_start,
        metrics_every=metrics_every,
    )
    return _run(
        strategy,
        world,
        LocalWorld(policy_source(policy), capital),
        strategy_id=strategy_id,
        returns=returns,
        auto_returns=auto_returns,
        dry_run=True,
        options=options,
        params=params,
    )


class Runner:
    """The Python entry points in one place: ``Runner.backtest``, ``Runner.submit``,
    ``Runner.validate``.

    >>> Runner.backtest is backtest, callable(Runner.submit)
    (True, True)
    """

    backtest = staticmethod(backtest)
    submit = staticmethod(submit)
    validate = staticmethod(validate)
