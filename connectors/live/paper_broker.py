"""A paper broker: fills one strategy's orders at the open of the symbol's next bar, plus
slippage (against the trade) and a fee, bringing the position to the order's target
quantity. Given the strategy's :class:`~dataflows.execution.Execution`, it fills by that
rule instead (``close``: at the deciding bar's close, :meth:`PaperBroker.on_close`;
``next_open``: at the next bar's open), with the slippage the portfolio charged for that
bar (its ``slip`` row) and target quantities rounded to the symbol's lot, so its fills are
the trades the backtest assumed. A fill and its position change are one transaction of the
order store, keyed by the order, so replayed bars never fill twice.

>>> import tempfile, os
>>> from connectors.live.order_store import open_order_store
>>> store = open_order_store(os.path.join(tempfile.mkdtemp(), "orders.db"))
>>> broker = PaperBroker(store, "w", "s", slippage_bps=10.0, fee_bps=1.0)
>>> o = OrderIntent(world="w", strategy_id="s", symbol="A", ts=1, target_weight=0.5,
...                 target_qty=50.0, reason="rebalance")
>>> [x.symbol for x in broker.submit([o])], broker.submit([o])   # the second is a repeat
(['A'], [])
>>> fill = broker.on_bar("A", ts=2, open_=10.0)[0]
>>> fill.qty, round(fill.price, 6), round(fill.fee, 6), broker.position("A")
(50.0, 10.01, 0.05005, 50.0)
"""

from __future__ import annotations

from collections.abc import Callable

from connectors.live.order_store import OrderStore, intent_key
from dataflows.execution import Execution, fee, fill_price, lot_quantity
from qmtl.core.contracts import Fill, OrderIntent


class PaperBroker:
    """Fills one strategy's orders at the next bar's open (see the module docstring). It
    works on a mirror of its open orders and positions in memory; :meth:`flush` writes what
    happened since the last flush to the store in one transaction. A ``quiet`` broker (the
    paper stage of a run that follows its world's stage) stores its orders and fills as
    published, so the relay never sends them to the orders topic."""

    def __init__(
        self,
        store: OrderStore,
        world: str,
        strategy_id: str,
        slippage_bps: float = 0.0,
        fee_bps: float = 0.0,
        quiet: bool = False,
        execution: Execution | None = None,
    ) -> None:
        if slippage_bps < 0 or fee_bps < 0:
            raise ValueError(
                f"slippage and fee must be >= 0 bp (got slippage_bps={slippage_bps}, "
                f"fee_bps={fee_bps})"
            )
        self.store = store
        self.world, self.strategy_id = world, strategy_id
        self.slippage = slippage_bps / 1e4
        self.fee_bps = fee_bps
        self.fee = fee_bps / 1e4
        self.execution = execution
        self.rule = execution.rule if execution is not None else "next_open"
        self.quiet = quiet  # its orders and fills are never published (stage paper)
        self._positions = store.positions(world, strategy_id)
        self._open: dict[str, list[OrderIntent]] = {}
        for o in store.orders(world, strategy_id, open_only=True):
            self._open.setdefault(o.symbol, []).append(o)
        self._orders: list[OrderIntent] = []
        self._fills: list[tuple[str, Fill, str, str, float]] = []

    def position(self, symbol: str) -> float:
        """Quantity held."""
        return self._positions.get(symbol, 0.0)

    def accept(self, intents: list[OrderIntent]) -> None:
        """Take orders (stored at the next :meth:`flush`)."""
        for o in intents:
            self._open.setdefault(o.symbol, []).append(o)
        self._orders += intents

    def on_bar(self, symbol: str, ts: int, open_: float, slip: float | None = None
               ) -> list[Fill]:
        """Fill ``symbol``'s orders decided before ``ts`` at this bar's open (rule
        ``next_open``; with rule ``close`` they were filled at their own bar's close).
        ``slip`` is the slippage fraction of a fill at this bar (default: ``slippage_bps``).
        """
        if self.rule != "next_open":
            return []
        return self._fill(symbol, ts, open_, slip, lambda o: o.ts < ts)

    def on_close(self, symbol: str, ts: int, close: float, slip: float | None = None
                 ) -> list[Fill]:
        """Rule ``close``: fill ``symbol``'s orders decided at or before ``ts`` at this bar's
        close (call it after the bar's orders were taken).

        >>> import tempfile, os
        >>> from connectors.live.order_store import open_order_store
        >>> b = PaperBroker(open_order_store(os.path.join(tempfile.mkdtemp(), "o.db")), "w",
        ...                 "s", fee_bps=1.0, execution=Execution(rule="close"))
        >>> b.accept([OrderIntent(world="w", strategy_id="s", symbol="A", ts=1,
        ...                       target_weight=1.0, target_qty=2.0, reason="x")])
        >>> b.on_bar("A", 1, 9.0), [(f.ts, f.qty, f.price) for f in b.on_close("A", 1, 10.0, 0.01)]
        ([], [(1, 2.0, 10.1)])
        """
        if self.rule != "close":
            return []
        return self._fill(symbol, ts, close, slip, lambda o: o.ts <= ts)

    def _fill(self, symbol: str, ts: int, ref: float, slip: float | None,
              due: Callable[[OrderIntent], bool]) -> list[Fill]:
        waiting = self._open.get(symbol)
        if not waiting:
            return []
        s = self.slippage if slip is None else float(slip)
        lot = self.execution.lot(symbol) if self.execution is not None else 0.0
        fills, keep = [], []
        for o in waiting:
            if not due(o):
                keep.append(o)
                continue
            target = lot_quantity(o.target_qty, lot)
            qty = target - self.position(symbol)
            price = fill_price(ref, qty, s)
            key = intent_key(o)
            fill = Fill(order_id=key, symbol=symbol, ts=ts, qty=qty, price=price,
                        fee=fee(qty, price, self.fee_bps))
            self._fills.append((key, fill, self.world, self.strategy_id, target))
            fills.append(fill)
            self._positions[symbol] = target
        self._open[symbol] = keep
        return fills

    def flush(self) -> tuple[list[OrderIntent], list[Fill]]:
        """Store the orders and fills since the last flush; return those that are new (a
        restarted flow replaying bars repeats decisions and fills the store already has)."""
        if not self._orders and not self._fills:
            return [], []
        try:
            return self.store.write(self._orders, self._fills, published=self.quiet)
        finally:
            self._orders, self._fills = [], []

    def submit(self, intents: list[OrderIntent]) -> list[OrderIntent]:
        """Take orders and store them at once; return the new ones.

        >>> import tempfile, os
        >>> from connectors.live.order_store import open_order_store
        >>> b = PaperBroker(open_order_store(os.path.join(tempfile.mkdtemp(), "o.db")), "w", "s")
        >>> o = OrderIntent(world="w", strategy_id="s", symbol="A", ts=1, target_weight=1.0,
        ...                 target_qty=2.0, reason="x")
        >>> len(b.submit([o])), b.submit([o])
        (1, [])
        """
        fresh = self.store.record(intents)
        for o in fresh:
            self._open.setdefault(o.symbol, []).append(o)
        return fresh
