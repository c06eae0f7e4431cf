"""A plain-language reading of a sweep's overfitting statistics, the deflated Sharpe ratio
and the probability of backtest overfitting taken together (pure; no plotly, so the sweep
command prints it without loading the page's libraries).

A DSR above 0.95 says the best Sharpe is unlikely to be the luck of the sweep's trials *if
they were independent draws*; PBO says how often the variant picked in-sample is at or
below the median out of sample. A high DSR beside a high PBO is not "significant": the
ranking does not carry out of sample, so the best variant's parameters are most likely
overfit.

>>> import numpy as np
>>> from qmtl.sweep.stats import Deflated, Pbo

if TYPE_CHECKING:
    from qmtl.sweep.result import SweepResult
>>> r = reading(Deflated(0.963, 0.08, 0.05, 100, 0.001, 500), Pbo(0.72, np.zeros(70)))
>>> r.level, r.verdict
('bad', 'overfit: the ranking does not hold out of sample')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qmtl.sweep.stats import Deflated, Pbo

if TYPE_CHECKING:
    from qmtl.sweep.result import SweepResult

DSR_LEVEL = 0.95
"""A deflated Sharpe ratio at or above this is significant at 5% (by the DSR alone)."""

PBO_LOW, PBO_HIGH = 0.1, 0.5
"""PBO at or below ``PBO_LOW``: the ranking holds out of sample; above ``PBO_HIGH``: the
in-sample pick does worse than the median out of sample more often than not."""

@dataclass
class Reading:
    """A plain-language reading of the overfitting statistics: a short ``verdict``, its
    ``level`` (``good``, ``warn`` or ``bad``) and the sentences that explain it.

    >>> Reading("v", "good", "t").level
    'good'
    """

    verdict: str
    level: str
    text: str


def reading(deflated: Deflated | None, pbo: Pbo | None) -> Reading:
    """What the deflated Sharpe ratio and PBO say together (either may be missing; a NaN
    DSR counts as missing). See the module docstring for the thresholds.

    >>> import numpy as np
    >>> reading(Deflated(0.99, 0.1, 0.05, 50, 0.001, 900), Pbo(0.04, np.zeros(70))).verdict
    'an edge beyond selection luck'
    >>> reading(Deflated(0.99, 0.1, 0.05, 50, 0.001, 900), None).verdict
    'significant by the DSR alone: PBO not computed'
    >>> reading(None, None).level
    'warn'
    """
    dsr = deflated.dsr if deflated is not None and math.isfinite(deflated.dsr) else None
    p = pbo.pbo if pbo is not None and math.isfinite(pbo.pbo) else None
    if dsr is None and p is None:
        return Reading("no statistics", "warn",
                       "The sweep has too few variants or bars for a deflated Sharpe ratio, "
                       "and PBO was not computed (--pbo).")
    dsr_text = ""
    if dsr is not None:
        assert deflated is not None
        sig = dsr >= DSR_LEVEL
        dsr_text = (
            f"The best variant's Sharpe ratio ({deflated.sharpe:.4f} a bar) "
            + ("is above" if deflated.sharpe > deflated.expected_max else "is not above")
            + f" the {deflated.expected_max:.4f} that the best of {deflated.n_trials} "
            f"trials reaches by luck alone: DSR {dsr:.3f}, "
            + ("at or above" if sig else "below") + f" {DSR_LEVEL}. ")
    pbo_text = ""
    if p is not None:
        assert pbo is not None
        pbo_text = (f"The variant that ranks best in-sample lands at or below the median "
                    f"out of sample in {p:.0%} of the {pbo.n_splits} splits (PBO {p:.2f}). ")
    if p is None:
        assert dsr is not None
        if dsr >= DSR_LEVEL:
            return Reading("significant by the DSR alone: PBO not computed", "warn",
                           dsr_text + "The DSR takes the trials as independent draws and "
                           "says nothing about whether the ranking holds on other bars: run "
                           "the sweep with --pbo (and --walk-forward) before trusting it.")
        return Reading("not significant", "bad", dsr_text + "The best result is within "
                       "what luck gives over this many trials.")
    if dsr is None:
        assert p is not None
        if p <= PBO_LOW:
            return Reading("the ranking holds out of sample", "good", pbo_text
                           + "There is no deflated Sharpe ratio to say whether the best "
                           "result itself is more than luck.")
        level = "bad" if p > PBO_HIGH else "warn"
        return Reading("overfit: the ranking does not hold out of sample" if level == "bad"
                       else "the ranking holds only partly", level, pbo_text)
    if dsr >= DSR_LEVEL and p <= PBO_LOW:
        return Reading("an edge beyond selection luck", "good", dsr_text + pbo_text
                       + "Both point to an edge that is not only the luck of choosing the "
                       "best of many; still confirm it on bars the sweep never saw.")
    if dsr >= DSR_LEVEL and p <= PBO_HIGH:
        return Reading("mixed: treat with caution", "warn", dsr_text + pbo_text
                       + "The ranking carries out of sample only partly: the strategy may "
                       "have an edge, but the best variant's exact parameters are probably "
                       "fitted to these bars.")
    if dsr >= DSR_LEVEL:
        return Reading("overfit: the ranking does not hold out of sample", "bad", dsr_text
                       + pbo_text + "The DSR alone would call the best Sharpe significant, "
                       "but picking by this ranking does worse than the median out of "
                       "sample more often than not: the best variant's result is most "
                       "likely the luck of the selection, not an edge. Do not rely on it.")
    if p <= PBO_LOW:
        return Reading("not significant, though the ranking holds", "warn", dsr_text
                       + pbo_text + "The variants may really differ, but the best one's "
                       "Sharpe cannot be told apart from luck at 5%.")
    return Reading("no evidence of an edge", "bad", dsr_text + pbo_text
                   + "Both are what noise gives: the best result is luck.")


def params_text(result: SweepResult, key: str) -> str:
    """The parameters (and strategy, when the sweep runs several) of the variant ``key``.

    >>> import numpy as np
    >>> from dataflows.sweep_flow import SweepStats, VariantRun
    >>> from qmtl.sweep.result import SweepResult
    >>> runs = [VariantRun(f"v{i}", np.arange(2), np.zeros(2), np.ones(2), {"sharpe": 0.0})
    ...         for i in range(2)]
    >>> res = SweepResult(["S"] * 2, [{"n": 1, "m": 2}, {"n": 3, "m": 4}], runs, "sharpe",
    ...                   SweepStats())
    >>> params_text(res, "v1")
    'n=3, m=4'
    """
    i = next(i for i, r in enumerate(result.runs) if r.key == key)
    text = ", ".join(f"{k}={v}" for k, v in result.params[i].items())
    if len(set(result.strategies)) > 1:
        text = f"{result.strategies[i]}: {text}" if text else result.strategies[i]
    return text or "(no parameters)"
