"""Factor statistics of many generated alphas in one flow, against alphalens per alpha.

``qmtl.factors`` evaluates N seeded random alphas (:mod:`qmtl.alpha.generate`) over one
universe of daily bars in one flow (shared nodes once), then computes each alpha's factor
statistics (rank IC per horizon, quantile means, spread, turnover, rank autocorrelation).
alphalens-reloaded computes the same statistics for a sample of the alphas, one at a time
(``get_clean_factor_and_forward_returns``, ``factor_information_coefficient``,
``mean_return_by_quantile``, ``quantile_turnover``, ``factor_rank_autocorrelation``), from
the factor values QMTL evaluated (its time excludes evaluating the alphas). The table gives
alphas per second of each and their ratio, and checks the sample's mean rank IC agree.

    python bench/factor.py                                      # 200 alphas, 100 x 1,000
    python bench/factor.py --alphas 1000 --symbols 500 --bars 2520  # the issue's scale
    python bench/factor.py --alphas 10 --symbols 10 --bars 200 --sample 2

Results go to ``bench/results/factor.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import alphalens as al  # noqa: E402 - imported before timing (matplotlib, seaborn)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.common import RESULTS, machine, print_table, write_results  # noqa: E402
from connectors.data.synthetic import generate_bars  # noqa: E402
from qmtl.alpha.functions import to_expr  # noqa: E402
from qmtl.alpha.generate import random_alphas  # noqa: E402
from qmtl.alpha.syntax import parse  # noqa: E402
from qmtl.factor.api import factors  # noqa: E402
from qmtl.factor.values import evaluate  # noqa: E402


def alphalens_stats(raw: np.ndarray, close: np.ndarray, ts: np.ndarray,
                    symbols: list[str]) -> float:
    """alphalens' statistics of one factor panel; its mean 1-bar rank IC.

    >>> c = np.cumprod(1 + np.random.default_rng(0).normal(0, .01, (40, 6)), axis=0)
    >>> -1 <= alphalens_stats(c.copy(), c, np.arange(40) * 86_400 * 10**9, list("ABCDEF")) <= 1
    True
    """
    idx = pd.to_datetime(ts, utc=True)
    prices = pd.DataFrame(close, index=idx, columns=symbols)
    factor = pd.DataFrame(raw, index=idx, columns=symbols).stack()
    factor.index.names = ["date", "asset"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fd = al.utils.get_clean_factor_and_forward_returns(
            factor, prices, periods=(1, 5, 10), quantiles=5, filter_zscore=None, max_loss=1.0)
        ic = al.performance.factor_information_coefficient(fd)
        al.performance.mean_return_by_quantile(fd, demeaned=False)
        by_date, _ = al.performance.mean_return_by_quantile(fd, by_date=True, demeaned=False)
        al.performance.compute_mean_returns_spread(by_date, 5, 1)
        for q in (1, 5):
            al.performance.quantile_turnover(fd["factor_quantile"], q, 1)
        al.performance.factor_rank_autocorrelation(fd, 1)
    return float(ic["1D"].mean())


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alphas", type=int, default=200)
    ap.add_argument("--symbols", type=int, default=100)
    ap.add_argument("--bars", type=int, default=1000)
    ap.add_argument("--sample", type=int, default=3, help="alphas alphalens computes")
    ap.add_argument("--out", type=Path, default=RESULTS / "factor.json")
    args = ap.parse_args(argv)
    symbols = [f"S{i:03d}" for i in range(args.symbols)]
    data = {s: generate_bars(args.bars, seed=7 + i) for i, s in enumerate(symbols)}
    texts = random_alphas(args.alphas, seed=1)
    t0 = time.perf_counter()
    reports, dedup = factors(texts, data, symbols=symbols)
    qmtl_s = time.perf_counter() - t0
    sample = texts[: args.sample]
    values = evaluate({t: to_expr(parse(t), t) for t in sample}, data, symbols)
    t0 = time.perf_counter()
    al_ic = [alphalens_stats(values.panels[t], values.close, values.ts, symbols)
             for t in sample]
    al_s = (time.perf_counter() - t0) / max(len(sample), 1)
    ours = [r.stats.horizons[1].rank_ic_summary.mean for r in reports[: args.sample]]
    agree = bool(np.allclose(ours, al_ic, atol=1e-9, equal_nan=True))
    rate, al_rate = args.alphas / qmtl_s, 1.0 / al_s
    rows = [["qmtl.factors (one flow)", f"{qmtl_s:.2f}", f"{rate:.2f}", "1.0x"],
            [f"alphalens per alpha ({len(sample)} timed)", f"{al_s * args.alphas:.2f} (est.)",
             f"{al_rate:.2f}", f"{al_rate / rate:.2f}x"]]
    print_table(f"{args.alphas} alphas x {args.symbols} symbols x {args.bars} daily bars "
                f"(dedup {dedup:.2f}x; sample rank IC agree: {agree})",
                ["system", "seconds", "alphas / s", "vs qmtl"], rows)
    write_results(args.out, {"alphas": args.alphas, "symbols": args.symbols,
                             "bars": args.bars, "qmtl_seconds": qmtl_s,
                             "qmtl_alphas_per_s": rate, "alphalens_seconds_per_alpha": al_s,
                             "alphalens_alphas_per_s": al_rate, "ratio": rate / al_rate,
                             "dedup": dedup, "sample_agree": agree, "machine": machine()})


if __name__ == "__main__":
    main()
