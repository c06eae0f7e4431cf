"""The portfolio's batches and the row helpers its steps share (pure numpy: no I/O).

:class:`SignalBatch` is one symbol's step output, :class:`PortfolioBatch` the portfolio's;
the helpers are column-local or sequential with carried state, so batching never changes
a result (:mod:`dataflows.portfolio`).

>>> import numpy as np
>>> _ffill(np.array([1.0, 0.0, 3.0]), np.array([True, False, True]), 0.0).tolist()
[1.0, 1.0, 3.0]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class SignalBatch:
    """One symbol's target weights and closes for a run of bars (per-symbol step output);
    ``open`` too when the portfolio reports prices (live runs, for order sizing and fills).

    >>> SignalBatch("A", np.array([1]), np.array([0.5]), np.array([10.0])).open is None
    True
    """

    symbol: str
    ts: np.ndarray
    weight: np.ndarray
    close: np.ndarray
    open: np.ndarray | None = None


class SymbolRows(MutableMapping[str, np.ndarray]):
    """A portfolio batch's per-symbol row columns, each built the first time it is read:
    a run that reads only the portfolio's series (a sweep, many alphas, metrics) never pays
    for turning its (symbols x bars) matrices into rows. A copy or pickle holds the built
    columns (every column is built then).

    >>> rows = SymbolRows({"ts": np.array([1, 2])}, {"twice": lambda: np.array([2, 4])})
    >>> sorted(rows), rows["twice"].tolist()
    (['ts', 'twice'], [2, 4])
    >>> import pickle
    >>> dict(pickle.loads(pickle.dumps(rows)))["twice"].tolist()
    [2, 4]
    """

    def __init__(
        self,
        columns: dict[str, np.ndarray] | None = None,
        make: dict[str, Callable[[], np.ndarray]] | None = None,
    ) -> None:
        self._built: dict[str, np.ndarray] = dict(columns or {})
        self._make: dict[str, Callable[[], np.ndarray]] = dict(make or {})

    def __getitem__(self, key: str) -> np.ndarray:
        value = self._built.get(key)
        if value is None:
            value = self._built[key] = self._make.pop(key)()
        return value

    def __setitem__(self, key: str, value: np.ndarray) -> None:
        self._make.pop(key, None)
        self._built[key] = value

    def __delitem__(self, key: str) -> None:
        if self._make.pop(key, None) is None:
            del self._built[key]

    def __iter__(self) -> Iterator[str]:
        yield from list(self._built)
        yield from [k for k in list(self._make) if k not in self._built]

    def __len__(self) -> int:
        return len(self._built) + len(self._make)

    def __getstate__(self) -> dict[str, Any]:
        return {"_built": {k: self[k] for k in list(self)}, "_make": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


@dataclass
class PortfolioBatch:
    """Portfolio rows for a run of timeline times, plus per-symbol detail rows.

    ``symbol_rows`` holds, for each symbol's own bars in this run: ``ts``, ``symbol`` (index
    into ``symbols``), ``weight`` (after the gross cap), ``return`` (the symbol's contribution,
    cost included), ``equity`` (the portfolio's) and ``close`` (the bar's: what a tear sheet's
    benchmark needs, a view of the bars' own array where it can be); with ``prices=True`` also
    the bar's ``open``.

    >>> from dataflows.portfolio import Portfolio
    >>> p = Portfolio(["A"], cost_bps=0.0, max_gross=1.0)
    >>> p.push(SignalBatch("A", np.array([1, 2]), np.ones(2), np.array([10.0, 11.0])))
    >>> out = p.drain()
    >>> len(out), sorted(out.symbol_rows)
    (2, ['close', 'equity', 'return', 'symbol', 'ts', 'weight'])
    """

    ts: np.ndarray
    returns: np.ndarray
    equity: np.ndarray
    turnover: np.ndarray
    gross: np.ndarray
    symbols: list[str]
    symbol_rows: MutableMapping[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ts)

    def after(self, t: int) -> PortfolioBatch | None:
        """The rows with ``ts > t`` (None when there are none).

        >>> b = PortfolioBatch(np.array([1, 2]), np.zeros(2), np.ones(2), np.zeros(2),
        ...                    np.zeros(2), ["A"], {"ts": np.array([1, 2])})
        >>> b.after(1).ts.tolist(), b.after(2)
        ([2], None)
        """
        cut = int(np.searchsorted(self.ts, t, side="right"))
        if cut == 0:
            return self
        if cut == len(self.ts):
            return None
        src = self.symbol_rows
        rows = int(np.searchsorted(src["ts"], t, side="right")) if "ts" in src else 0
        return PortfolioBatch(
            self.ts[cut:],
            self.returns[cut:],
            self.equity[cut:],
            self.turnover[cut:],
            self.gross[cut:],
            self.symbols,
            SymbolRows(make={k: lambda k=k: src[k][rows:] for k in src}),
        )


_INF = float("inf")


def _compound(returns: np.ndarray, start: float) -> np.ndarray:
    """Equity after each of ``returns``, from ``start`` (a sequential product: any split of
    the returns, each part started at the previous part's last value, gives the same).

    >>> _compound(np.array([0.1, -0.5]), 2.0).round(6).tolist()
    [2.2, 1.1]
    """
    growth = np.empty(len(returns) + 1)
    growth[0] = start
    np.add(returns, 1.0, out=growth[1:])
    return np.multiply.accumulate(growth)[1:]


def _sum_rows(m: np.ndarray) -> np.ndarray:
    """Column sums of a symbol-major matrix (one row per symbol), adding the rows top to
    bottom: a fixed order, so the result is bit-identical for any number of columns (bars),
    and each step is a contiguous vector add. One row is returned as a view, not a copy.

    >>> _sum_rows(np.array([[1.0, 2.0], [3.0, 4.0]])).tolist()
    [4.0, 6.0]
    """
    if m.shape[0] == 1:
        return m[0]
    acc = m[0].copy()
    for j in range(1, m.shape[0]):
        acc += m[j]
    return acc


def _repeat(values: np.ndarray, n: int) -> np.ndarray:
    """Each value ``n`` times in a row (``np.repeat``, as one broadcast copy: faster).

    >>> _repeat(np.array([1, 2]), 2).tolist()
    [1, 1, 2, 2]
    """
    if n == 1:
        return values
    return np.broadcast_to(values[:, None], (len(values), n)).reshape(-1)


def _shifted(m: np.ndarray, first: np.ndarray) -> np.ndarray:
    """``m`` (one row per symbol) moved right one bar, with ``first`` as the new first bar."""
    out = np.empty_like(m)
    out[:, 0] = first
    out[:, 1:] = m[:, :-1]
    return out


def _ffill(values: np.ndarray, present: np.ndarray, carried: float) -> np.ndarray:
    """Forward-fill ``values`` over rows where ``present`` is false, from ``carried``."""
    idx = np.where(present, np.arange(len(values)), -1)
    np.maximum.accumulate(idx, out=idx)
    return np.where(idx >= 0, values[np.maximum(idx, 0)], carried)


def _opens(batch: SignalBatch) -> np.ndarray:
    """A batch's opens (its closes when it carries none)."""
    return batch.open if batch.open is not None else batch.close


def _add_prices(
    out: PortfolioBatch,
    taken: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None],
    opens: list[np.ndarray | None],
) -> None:
    """Put each symbol row's bar ``open`` into ``out.symbol_rows`` (its ``close`` is always
    there: see :class:`PortfolioBatch`)."""
    rows = out.symbol_rows
    open_ = np.empty(len(rows["ts"]))
    for i, part in enumerate(taken):
        if part is None:
            continue
        mine = rows["symbol"] == i  # this symbol's rows, in time order, one per bar taken
        open_[mine] = opens[i]
    rows["open"] = open_
