"""A live run's bars, returns and fills into QuestDB over ILP (the ``questdb`` client).

``qmtl run --mode live --sink 'tcp::addr=host:9009;'`` (or ``http::addr=host:9000;``)
writes, when the run ends (a resumed run writes its own part), three tables:

- ``qmtl_run_bars``: per bar time and symbol, the weight held, the bar's return and the
  equity (tags ``strategy``, ``run_id``, ``symbol``), as ``bars.parquet`` holds them;
- ``qmtl_run_returns``: per bar time, the book's return and equity (tags ``strategy``,
  ``run_id``);
- ``qmtl_run_fills``: each fill's quantity, price and fee at its time (tags ``strategy``,
  ``symbol``, ``order_id``).

Rows go out in one buffer per table, flushed, retried with backoff by the connection of
:class:`connectors.data.questdb.QuestDBWriter`.

>>> RunSink("tcp::addr=127.0.0.1:9009;").writer.name
'questdb ilp 127.0.0.1:9009'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from tenacity import Retrying, stop_after_attempt, wait_exponential

from connectors.data.questdb import QuestDBError, QuestDBWriter, _ingress
from qmtl.core.contracts import Fill


class RunSink:
    """Writes a run's tables (see the module docstring) over the ILP connection ``conf``."""

    def __init__(self, conf: str, retries: int = 3, backoff: float = 0.5) -> None:
        self.writer = QuestDBWriter(conf, retries=retries, backoff=backoff)

    def _rows(self, table: str, rows: list[tuple[dict[str, str], dict[str, float], int]]) -> int:
        if not rows:
            return 0
        q = _ingress()
        w = self.writer

        def send() -> int:
            try:
                buf = w._open().new_buffer()
                for tags, cols, ts in rows:
                    buf.row(table, symbols=tags, columns=cols, at=q.TimestampNanos(ts))
                w._open().flush(buf)
                return len(rows)
            except Exception:
                w._drop()
                raise

        retrying = Retrying(
            stop=stop_after_attempt(w.retries + 1),
            wait=wait_exponential(multiplier=w.backoff, exp_base=2),
            sleep=w.sleep,
            reraise=True,
        )
        try:
            with w._lock:
                return retrying(send)
        except Exception as exc:
            raise QuestDBError(
                f"{w.name}: writing {len(rows)} rows to {table} failed after "
                f"{w.retries + 1} attempts: {exc}"
            ) from None

    def write(
        self,
        strategy: str,
        run_id: str,
        bars: Any,
        ts: np.ndarray,
        returns: np.ndarray,
        equity: np.ndarray,
        fills: Sequence[Fill],
    ) -> dict[str, int]:
        """Write the run's bars table (``ts, symbol, weight, return, equity``), its return
        series and its fills; return the rows written per table."""
        head = {"strategy": strategy, "run_id": run_id}
        cols = bars.to_pydict() if hasattr(bars, "to_pydict") else dict(bars)
        bar_rows = [
            (
                {**head, "symbol": str(s)},
                {"weight": float(w), "return": float(r), "equity": float(e)},
                int(t),
            )
            for t, s, w, r, e in zip(
                cols.get("ts", []),
                cols.get("symbol", []),
                cols.get("weight", []),
                cols.get("return", []),
                cols.get("equity", []),
                strict=True,
            )
        ]
        ret_rows = [
            (head, {"return": float(r), "equity": float(e)}, int(t))
            for t, r, e in zip(ts, returns, equity, strict=True)
        ]
        fill_rows = [
            (
                {"strategy": strategy, "symbol": f.symbol, "order_id": f.order_id},
                {"qty": float(f.qty), "price": float(f.price), "fee": float(f.fee)},
                int(f.ts),
            )
            for f in fills
        ]
        return {
            "qmtl_run_bars": self._rows("qmtl_run_bars", bar_rows),
            "qmtl_run_returns": self._rows("qmtl_run_returns", ret_rows),
            "qmtl_run_fills": self._rows("qmtl_run_fills", fill_rows),
        }

    def close(self) -> None:
        """Flush and close the connection."""
        self.writer.close()
