"""Cross-sectional speed, in one run: a momentum alpha over many symbols, qmtl against the
same math in hand-written numpy and in pandas.

    python bench/crosssection.py              # 500 symbols x 10,000 bars
    python bench/crosssection.py --quick      # 20 symbols x 500 bars: the test suite runs this

The alpha is a market-neutral momentum book, ``cs.scale(cs.demean(cs.rank(close.pct_change(5))))``
(weights decided at a bar's close, held to the next close, no cost). Every system computes the
per-bar portfolio returns; they are checked against qmtl's (1e-9) before any speed is
reported, and a failed check stops the run with a non-zero exit:

- qmtl: the full path (validation, fingerprint, the per-symbol and cross-sectional stages,
  returns, metrics, per-symbol rows), one flow, via :func:`run_alphas`;
- numpy (floor): a time x symbol matrix, ``argsort`` ranks, row means and sums;
- pandas, wide (a time x symbol frame): ``pct_change``, ``rank(axis=1)`` and row-wise
  ``sub``/``div``;
- pandas, long (one row per time and symbol, as research tables often are): ``groupby`` by
  symbol for the time series and by time for the cross-section.

Targets: qmtl at least 0.5x numpy's speed (issue 13), at least 3x pandas' wide
``rank(axis=1)`` (issue 29) and 5x pandas' groupby (issue 13). Then a row of
many alphas (:mod:`bench.alphas`): 1,000 seeded random alphas in one flow, their time and
dedup factor (scaled down to 100 symbols x 2,000 bars; ``--alphas N``, 0 to skip). Prints the
tables, writes ``bench/results/crosssection.json``. :func:`run_alphas` runs a list of weight
expressions through one flow (each its own strategy over the same universe): other
benchmarks reuse it for many alphas at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.alphas import measure, table_rows, title  # noqa: E402
from bench.common import (  # noqa: E402
    PPY,
    RESULTS,
    CheckFailed,
    Data,
    check_returns,
    machine,
    make_data,
    print_table,
    race,
    write_results,
)
from connectors.data.memory import aligned_batches  # noqa: E402
from dataflows.compiler import StrategySpec, run_dataflow  # noqa: E402
from qmtl import cs  # noqa: E402
from qmtl.core.expr import Expr, col  # noqa: E402

LOOKBACK = 5


def momentum(n: int = LOOKBACK) -> Expr:
    """The benchmark's alpha: a market-neutral momentum book.

    >>> momentum().op
    'cs_scale'
    """
    return cs.scale(cs.demean(cs.rank(col("close").pct_change(n))))


def run_alphas(exprs: list[Expr], data: Data, batch_size: int = 10_000,
               max_gross: float = 2.0) -> list[np.ndarray]:
    """Per-bar returns of each weight expression in ``exprs``, all evaluated in one flow over
    every symbol of ``data`` (shared nodes computed once); ``max_gross`` above the alphas'
    own gross leaves their weights uncapped.

    >>> r = run_alphas([momentum(), -momentum()], make_data(3, 30))
    >>> len(r), len(r[0]), bool(np.allclose(r[0], -r[1]))
    (2, 30, True)
    """
    syms = sorted(data)
    specs = [StrategySpec(f"a{i}", syms, e, 0.0, max_gross, PPY, interval="1m")
             for i, e in enumerate(exprs)]
    outs = run_dataflow(specs, lambda: aligned_batches(data, batch_size))
    parts: dict[str, list[np.ndarray]] = {s.key: [] for s in specs}
    for o in outs:
        if o.batch is not None:
            parts[o.strategy].append(o.batch.returns)
    return [np.concatenate(parts[s.key]) for s in specs]


def close_matrix(data: Data) -> np.ndarray:
    """Closes as a time x symbol matrix (symbols sorted).

    >>> close_matrix(make_data(2, 4)).shape
    (4, 2)
    """
    return np.stack([data[s]["close"] for s in sorted(data)], axis=1)


def numpy_momentum(close: np.ndarray, n: int = LOOKBACK) -> np.ndarray:
    """The alpha's per-bar returns in hand-written numpy (no ties in the data: ranks by a
    double ``argsort``; a time with no finite momentum holds nothing).

    >>> c = close_matrix(make_data(3, 30))
    >>> bool(np.allclose(numpy_momentum(c), run_alphas([momentum()], make_data(3, 30))[0]))
    True
    """
    t, s = close.shape
    mom = np.full((t, s), np.nan)
    mom[n:] = close[n:] / close[:-n] - 1.0
    ok = np.isfinite(mom)
    rank = np.argsort(np.argsort(np.where(ok, mom, np.inf), axis=1), axis=1).astype(float)
    cnt = ok.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.where(cnt > 1, rank / (cnt - 1), 0.5)
        pct = np.where(ok, pct, np.nan)
        mean = np.nansum(pct, axis=1, keepdims=True) / cnt
        dm = pct - mean
        gross = np.nansum(np.abs(dm), axis=1, keepdims=True)
        w = np.where(gross > 0, dm / gross, 0.0)
    w = np.where(ok, w, 0.0)
    ret = np.zeros(t)
    ret[1:] = (w[:-1] * (close[1:] / close[:-1] - 1.0)).sum(axis=1)
    return ret


def pandas_momentum(close: Any, n: int = LOOKBACK) -> np.ndarray:
    """The alpha's per-bar returns in pandas (``close`` a time x symbol DataFrame).

    >>> import pandas as pd
    >>> c = close_matrix(make_data(3, 30))
    >>> bool(np.allclose(pandas_momentum(pd.DataFrame(c)), numpy_momentum(c)))
    True
    """
    mom = close.pct_change(n, fill_method=None)
    pct = mom.rank(axis=1, method="average")
    pct = pct.sub(1.0).div(mom.count(axis=1).sub(1.0), axis=0)
    dm = pct.sub(pct.mean(axis=1), axis=0)
    w = dm.div(dm.abs().sum(axis=1), axis=0).fillna(0.0)
    ret = (w.shift(1) * close.pct_change(fill_method=None)).sum(axis=1)
    return ret.to_numpy()


def long_frame(close: np.ndarray) -> Any:
    """Closes in long format, one row per (time, symbol), as a research table often is.

    >>> long_frame(close_matrix(make_data(2, 3))).shape
    (6, 3)
    """
    import pandas as pd  # the bench extra

    t, s = close.shape
    return pd.DataFrame({"t": np.repeat(np.arange(t), s), "symbol": np.tile(np.arange(s), t),
                         "close": close.reshape(-1)})


def pandas_groupby_momentum(df: Any, n: int = LOOKBACK) -> np.ndarray:
    """The alpha's per-bar returns in long-format pandas: ``groupby`` by symbol for the
    time series and by time for the cross-section.

    >>> c = close_matrix(make_data(3, 30))
    >>> bool(np.allclose(pandas_groupby_momentum(long_frame(c)), numpy_momentum(c)))
    True
    """
    by_sym = df.groupby("symbol", sort=False)["close"]
    mom = by_sym.pct_change(n, fill_method=None)
    ret = by_sym.pct_change(fill_method=None)
    by_t = mom.groupby(df["t"], sort=False)
    pct = (by_t.rank(method="average") - 1.0) / (by_t.transform("count") - 1.0)
    dm = pct - pct.groupby(df["t"], sort=False).transform("mean")
    w = (dm / dm.abs().groupby(df["t"], sort=False).transform("sum")).fillna(0.0)
    held = w.groupby(df["symbol"], sort=False).shift(1)
    return (held * ret).groupby(df["t"], sort=True).sum().to_numpy()


def run(n_symbols: int, n_bars: int, rounds: int) -> dict[str, Any]:
    """Check, then time the three systems; the results document.

    >>> doc = run(3, 40, 1)
    >>> [r["system"] for r in doc["rows"]]
    ['qmtl', 'numpy (floor)', 'pandas (wide, rank(axis=1))', 'pandas (long, groupby)']
    """
    import pandas as pd  # the bench extra

    data = make_data(n_symbols, n_bars)
    close = close_matrix(data)
    frame = pd.DataFrame(close)
    long = long_frame(close)
    alpha = momentum()
    timed = race({
        "qmtl": lambda: run_alphas([alpha], data)[0],
        "numpy (floor)": lambda: numpy_momentum(close),
        "pandas (wide, rank(axis=1))": lambda: pandas_momentum(frame),
        "pandas (long, groupby)": lambda: pandas_groupby_momentum(long),
    }, rounds)
    want = timed["qmtl"][1]
    rows = []
    bars = n_symbols * n_bars
    for system, (seconds, got) in timed.items():
        check = "reference" if system == "qmtl" else check_returns(system, got, want)
        rows.append({"system": system, "seconds": seconds, "bars_per_s": bars / seconds,
                     "check": check})
    q = timed["qmtl"][0]
    ratios = {"qmtl_vs_numpy": timed["numpy (floor)"][0] / q,
              "qmtl_vs_pandas": timed["pandas (wide, rank(axis=1))"][0] / q,
              "qmtl_vs_pandas_groupby": timed["pandas (long, groupby)"][0] / q}
    return {"case": f"{n_symbols} symbols x {n_bars:,} bars", "n_symbols": n_symbols,
            "n_bars": n_bars, "rows": rows, "ratios": ratios,
            "targets": {"qmtl_vs_numpy": 0.5, "qmtl_vs_pandas": 3.0,
                        "qmtl_vs_pandas_groupby": 5.0}}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (see the module docstring); exit 1 when a check fails."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    ap.add_argument("--out", type=Path, default=RESULTS / "crosssection.json")
    ap.add_argument("--alphas", type=int, default=None,
                    help="generated alphas in one flow (bench/alphas.py; 0: skip; default "
                         "1,000 over 100 symbols x 2,000 bars, --quick 10 over 10 x 200)")
    args = ap.parse_args(argv)
    n_sym, n_bars, rounds = (20, 500, 1) if args.quick else (500, 10_000, 3)
    try:
        doc = run(n_sym, n_bars, rounds)
    except CheckFailed as exc:
        print(f"check failed: {exc}", file=sys.stderr)
        return 1
    print_table(f"cross-sectional momentum, {doc['case']} (best of {rounds})",
                ["system", "seconds", "bars/s", "check"],
                [[r["system"], f"{r['seconds']:.3f}", f"{r['bars_per_s']:,.0f}", r["check"]]
                 for r in doc["rows"]])
    r = doc["ratios"]
    print_table("targets", ["ratio", "measured", "target"],
                [["qmtl speed / numpy speed", f"{r['qmtl_vs_numpy']:.2f}x", ">= 0.5x"],
                 ["qmtl speed / pandas (wide) speed", f"{r['qmtl_vs_pandas']:.2f}x", ">= 3x"],
                 ["qmtl speed / pandas (groupby) speed", f"{r['qmtl_vs_pandas_groupby']:.2f}x",
                  ">= 5x"]])
    n_alphas = args.alphas if args.alphas is not None else (10 if args.quick else 1_000)
    if n_alphas:
        # many alphas: the full panel times 1,000 portfolios is hours here, so scaled down
        many = measure(n_alphas, *((10, 200) if args.quick else (100, 2_000)), sample=3)
        print_table(title(many), ["measure", "value"], table_rows(many))
        doc["generated_alphas"] = many
    write_results(args.out, {"machine": machine(), **doc})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
