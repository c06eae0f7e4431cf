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
they are derived from the strategy's target weights and prices (``auto_returns=True``). If
nothing can give returns the result is ``rejected`` with a hint that says why.

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

import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from dataflows.metrics import MetricSet
from qmtl.core.contracts import MetricsUpdate, SubmitResult
from qmtl.core.errors import QmtlError
from qmtl.strategy import Strategy

CHUNK = 1_000
"""Returns per MetricsUpdate when a returns series is given rather than derived."""


class SubmitError(QmtlError, RuntimeError):
    """The world could not be reached or refused the submission (the message says why)."""


class WorldClient(Protocol):
    """Where updates go and decisions come from: a world over HTTP, or one in process."""

    capital: float

    def post(self, updates: list[MetricsUpdate]) -> None:
        """Send metric updates."""

    def decision(self, strategy_id: str) -> dict[str, Any]:
        """The world's view of a strategy (status, weight, rank, hints, ...)."""


class HttpWorld:
    """A WorldService over HTTP (``url``, bearer ``token``); its errors become
    :class:`SubmitError` with the service's explanation.

    >>> HttpWorld("demo", "http://127.0.0.1:9", timeout=1)
    Traceback (most recent call last):
    ...
    qmtl.submit.SubmitError: cannot reach the world service at http://127.0.0.1:9: ...
    """

    def __init__(self, world: str, url: str, token: str | None = None, timeout: float = 30) -> None:
        # imported here, not at the top: world_api imports qmtl.core, and the qmtl package
        # imports this module, so `import world_api.client` first would be a cycle
        from world_api import client as world_client

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
        # imported here for the same reason as in HttpWorld (an import cycle through qmtl)
        from world_api.domain import evaluator
        from world_api.domain import policy as world_policy

        self.capital = capital
        p = (policy if isinstance(policy, world_policy.Policy)
             else world_policy.parse_policy(policy or "{}"))
        self.engine = evaluator.WorldEngine(p)

    def post(self, updates: list[MetricsUpdate]) -> None:
        """Ingest the updates."""
        for u in updates:
            self.engine.ingest(u)

    def decision(self, strategy_id: str) -> dict[str, Any]:
        """The local engine's view."""
        return self.engine.view(strategy_id).model_dump()


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    from dataflows.metrics import finite

    return {k: finite(v) for k, v in metrics.items()}


def _given_returns(s: Strategy, given: Any, capital: float) -> np.ndarray | None:
    """Returns from an explicit series or from the strategy's returns/equity/pnl."""
    if given is not None:
        return np.asarray(given, dtype=np.float64).ravel()
    for name in ("returns", "equity", "pnl"):
        fn = getattr(s, name, None)
        if fn is None:
            continue
        values = np.asarray(fn() if callable(fn) else fn, dtype=np.float64).ravel()
        if name == "equity":
            return values[1:] / values[:-1] - 1.0
        if name == "pnl":
            return values / capital
        return values
    return None


def _run(
    strategy: type[Strategy] | Strategy,
    world_name: str,
    client: WorldClient,
    *,
    strategy_id: str | None,
    returns: Any,
    auto_returns: bool,
    dry_run: bool,
    options: dict[str, Any],
) -> SubmitResult:
    from qmtl.runner import backtest, make_strategy

    params = {k: options.pop(k) for k in list(options) if k not in _BACKTEST_OPTIONS}
    s = make_strategy(strategy, params)
    sid = strategy_id or s.name
    run_id = uuid.uuid4().hex[:12]
    seq = 0

    def make_update(n_bars: int, as_of: int, metrics: dict[str, float], rets: Sequence[float]):
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
            returns=[float(x) for x in rets],
        )

    def result(
        status: str | None = None,
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
        view = client.decision(sid)
        return SubmitResult(
            world=world_name,
            strategy_id=sid,
            run_id=run_id,
            status=view["status"],
            metrics=view["metrics"],
            contribution=view["contribution"],
            weight=view["weight"],
            rank=view["rank"],
            improvement_hints=view["hints"],
            n_bars=view["n_bars"],
            dry_run=dry_run,
        )

    series = _given_returns(s, returns, client.capital)
    if series is not None:
        if not np.all(np.isfinite(series)):
            bad = int(np.argmax(~np.isfinite(series)))
            return result("rejected", [f"returns[{bad}] is not a finite number"])
        from qmtl.core.intervals import periods_per_year

        ms = MetricSet(options.get("periods_per_year") or periods_per_year(s.interval))
        updates = []
        for lo in range(0, len(series), CHUNK):
            part = series[lo : lo + CHUNK]
            ms.update(part)
            updates.append(make_update(lo + len(part), lo + len(part), ms.get(), part))
        if not updates:
            return result("rejected", ["the returns series is empty"])
        client.post(updates)
        return result()

    if not auto_returns:
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

    def on_output(out: Any) -> None:
        if out.metrics is not None:
            if held:
                client.post([held.pop()])
            held.append(make_update(out.n_bars, out.as_of, out.metrics, out.returns_since))

    ran = backtest(s, on_output=on_output, **options)
    if held:
        client.post([held.pop().model_copy(update={"fingerprint": ran.data.get("fingerprint")})])
    return result()


_BACKTEST_OPTIONS = {
    "data",
    "symbols",
    "start",
    "end",
    "cost_bps",
    "batch_size",
    "workers",
    "periods_per_year",
    "on_bad_bars",
    "progress",
    "on_start",
    "metrics_every",
}


def submit(
    strategy: type[Strategy] | Strategy,
    world: str,
    url: str = "http://127.0.0.1:8600",
    token: str | None = None,
    *,
    strategy_id: str | None = None,
    returns: Any = None,
    auto_returns: bool = True,
    dry_run: bool = False,
    **options: Any,
) -> SubmitResult:
    """Backtest ``strategy``, stream its metrics to ``world`` at ``url`` and return the world's
    decision. ``options`` are backtest options (``data``, ``start``, ...) and strategy
    parameters. ``dry_run`` evaluates the world's policy locally and sends nothing."""
    remote = HttpWorld(world, url, token)
    try:
        if dry_run:
            local = LocalWorld(remote.policy_text(), capital=remote.capital)
            return _run(
                strategy,
                world,
                local,
                strategy_id=strategy_id,
                returns=returns,
                auto_returns=auto_returns,
                dry_run=True,
                options=options,
            )
        return _run(
            strategy,
            world,
            remote,
            strategy_id=strategy_id,
            returns=returns,
            auto_returns=auto_returns,
            dry_run=False,
            options=options,
        )
    finally:
        remote.close()


def validate(
    strategy: type[Strategy] | Strategy,
    policy: Any = None,
    *,
    world: str = "local",
    capital: float = 1_000_000.0,
    strategy_id: str | None = None,
    returns: Any = None,
    auto_returns: bool = True,
    **options: Any,
) -> SubmitResult:
    """Apply ``policy`` (YAML/JSON text, dict or Policy) locally and return the same result
    and hints a world would, without touching any world."""
    return _run(
        strategy,
        world,
        LocalWorld(policy, capital),
        strategy_id=strategy_id,
        returns=returns,
        auto_returns=auto_returns,
        dry_run=True,
        options=options,
    )


class Runner:
    """The Python entry points in one place: ``Runner.backtest``, ``Runner.submit``,
    ``Runner.validate``.

    >>> callable(Runner.submit)
    True
    """

    backtest: Callable[..., Any]
    submit = staticmethod(submit)
    validate = staticmethod(validate)


def _backtest(*args: Any, **kwargs: Any) -> Any:
    from qmtl.runner import backtest

    return backtest(*args, **kwargs)


Runner.backtest = staticmethod(_backtest)  # type: ignore[assignment]
