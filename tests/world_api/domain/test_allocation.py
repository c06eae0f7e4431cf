"""Allocation answers checked by hand and by their defining properties."""

from __future__ import annotations

import numpy as np
import pytest

from world_api.domain.allocation import allocate, cap_weights, hrp, risk_parity


def test_simple_methods_by_hand():
    assert allocate("equal", n=4).tolist() == [0.25] * 4
    np.testing.assert_allclose(allocate("inverse_vol", vols=np.array([0.1, 0.2, 0.4])),
                               np.array([4, 2, 1]) / 7)
    np.testing.assert_allclose(allocate("score", scores=np.array([3.0, 1.0, -2.0])),
                               [0.75, 0.25, 0.0])


def test_risk_parity_equalizes_risk_contributions():
    diag = np.diag([0.04, 0.01, 0.09])
    np.testing.assert_allclose(risk_parity(diag), allocate("inverse_vol",
                                                           vols=np.array([0.2, 0.1, 0.3])))
    cov = np.array([[0.04, 0.006], [0.006, 0.01]])
    w = risk_parity(cov)
    rc = w * (cov @ w)
    assert rc[0] == pytest.approx(rc[1], rel=1e-9)
    assert w.sum() == pytest.approx(1.0)


def test_hrp_on_block_diagonal_covariance():
    # two uncorrelated blocks of two; within a block, equal variances -> equal split inside;
    # between blocks, inverse cluster variance.
    a = np.array([[0.04, 0.02], [0.02, 0.04]])  # cluster variance 0.03
    b = np.array([[0.01, 0.005], [0.005, 0.01]])  # cluster variance 0.0075
    cov = np.zeros((4, 4))
    cov[:2, :2], cov[2:, 2:] = a, b
    w = hrp(cov)
    share_a = 1 - 0.03 / (0.03 + 0.0075)
    np.testing.assert_allclose(w, [share_a / 2, share_a / 2, (1 - share_a) / 2, (1 - share_a) / 2])


def test_caps():
    np.testing.assert_allclose(cap_weights(np.array([0.7, 0.2, 0.1]), 0.4), [0.4, 0.4, 0.2])
    w = cap_weights(np.array([0.5, 0.5]), 0.3)
    assert w.tolist() == [0.3, 0.3] and w.sum() < 1
    w = cap_weights(np.random.default_rng(1).random(20), 0.08)
    assert (w >= 0).all() and (w <= 0.08 + 1e-12).all() and w.sum() <= 1 + 1e-12
