"""Three policy presets for a new world (``qmtl world create W --preset NAME``).

Each is an ordinary policy (YAML, validated by :func:`~world_api.domain.policy.parse_policy`)
that sets every field but ``promotion`` (stages are opt-in), so what a world runs is
visible in ``GET /worlds/{id}/policy``:

=================  ==========================  =============================  ================
field              conservative                balanced                       aggressive
=================  ==========================  =============================  ================
min_bars           750 (about 3 years daily)   500                            250
gates              sharpe >= 1.0,              sharpe >= 0.7,                 sharpe >= 0.4,
                   max_drawdown <= 0.15,       max_drawdown <= 0.25           max_drawdown <= 0.4
                   win_rate >= 0.45
score              sharpe 0.6, calmar 0.4      sharpe 1.0                     sharpe 0.5,
                                                                              total_return 0.5
top_k              5                           10                             20
max_correlation    0.6                         0.8                            0.95
hysteresis         margin 0.2, dwell 60 bars   margin 0.1, dwell 20 bars      margin 0.0,
                                                                              dwell 5 bars
allocation         risk_parity, max 0.25,      inverse_vol, max 0.3,          score, max 0.5,
                   min_change 0.02             min_change 0.01                min_change 0.0
record             auto                        auto                           auto
max_silence        5 bars                      10 bars                        20 bars
evaluation         client                      client                         client
oos_sharpe         none                        none                           none
=================  ==========================  =============================  ================

Conservative admits few, long-tested, uncorrelated strategies and moves slowly; balanced is
the middle; aggressive admits more, tolerates deeper drawdowns and correlation, and follows
scores quickly.

>>> sorted(PRESETS)
['aggressive', 'balanced', 'conservative']
>>> preset("conservative").top_k
5
"""

from __future__ import annotations

from world_api.domain.policy import Policy, PolicyError, parse_policy

PRESETS: dict[str, str] = {
    "conservative": """\
min_bars: 750
gates: {sharpe: ">= 1.0", max_drawdown: "<= 0.15", win_rate: ">= 0.45"}
score: {sharpe: 0.6, calmar: 0.4}
top_k: 5
max_correlation: 0.6
hysteresis: {margin: 0.2, min_dwell_bars: 60}
allocation: {method: risk_parity, max_weight: 0.25, min_change: 0.02}
record: auto
max_silence: 5 bars
evaluation: client
oos_sharpe: null
""",
    "balanced": """\
min_bars: 500
gates: {sharpe: ">= 0.7", max_drawdown: "<= 0.25"}
score: {sharpe: 1.0}
top_k: 10
max_correlation: 0.8
hysteresis: {margin: 0.1, min_dwell_bars: 20}
allocation: {method: inverse_vol, max_weight: 0.3, min_change: 0.01}
record: auto
max_silence: 10 bars
evaluation: client
oos_sharpe: null
""",
    "aggressive": """\
min_bars: 250
gates: {sharpe: ">= 0.4", max_drawdown: "<= 0.4"}
score: {sharpe: 0.5, total_return: 0.5}
top_k: 20
max_correlation: 0.95
hysteresis: {margin: 0.0, min_dwell_bars: 5}
allocation: {method: score, max_weight: 0.5, min_change: 0.0}
record: auto
max_silence: 20 bars
evaluation: client
oos_sharpe: null
""",
}
"""The presets' policies as YAML, by name."""


def preset(name: str) -> Policy:
    """The preset ``name`` as a :class:`Policy`; a PolicyError naming the presets otherwise.

    >>> preset("risky")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    world_api.domain.policy.PolicyError: unknown preset 'risky'; presets: conservative, ...
    """
    if name not in PRESETS:
        raise PolicyError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return parse_policy(PRESETS[name])
