"""Tests for validation/pbo.py: PBO on dominant, overfit and noise candidates; the Sharpe fast path."""

import math
from typing import Any

import numpy as np
import pytest

from validation.pbo import PBOResult, pbo, sharpe_ratio


def test_pbo_is_zero_for_a_truly_dominant_candidate() -> None:
    returns = np.random.default_rng(7).normal(size=(480, 30))
    returns[:, 11] += 0.6
    result = pbo(returns, n_partitions=16)
    assert isinstance(result, PBOResult)
    assert result.n_combinations == math.comb(16, 8) == result.logits.shape[0]
    assert result.pbo == 0.0
    assert (result.selected == 11).all()
    assert result.probability_of_loss == 0.0


def test_pbo_is_near_one_when_selection_is_pure_overfitting() -> None:
    # No candidate has skill over the full sample: the in-sample winner is the out-of-sample loser.
    returns = np.random.default_rng(8).normal(size=(480, 30))
    returns -= returns.mean(axis=0)
    result = pbo(returns, n_partitions=16)
    assert result.pbo > 0.9
    assert result.degradation_slope < 0


def test_pbo_of_independent_noise_is_about_one_half() -> None:
    values = [
        pbo(np.random.default_rng(seed).normal(size=(320, 20)), n_partitions=8).pbo for seed in range(20)
    ]
    assert 0.35 < float(np.mean(values)) < 0.65


def test_pbo_fast_sharpe_path_equals_generic_metric() -> None:
    returns = np.random.default_rng(9).normal(size=(203, 12))
    returns[:, 3] = 0.0  # a candidate that never trades
    fast = pbo(returns, n_partitions=6)
    generic = pbo(returns, n_partitions=6, metric=lambda block: sharpe_ratio(block))
    assert fast.rows_dropped == generic.rows_dropped == 203 % 6
    np.testing.assert_array_equal(fast.selected, generic.selected)
    np.testing.assert_allclose(fast.logits, generic.logits)
    np.testing.assert_allclose(fast.in_sample, generic.in_sample, rtol=1e-10)
    assert fast.pbo == generic.pbo


def test_pbo_hand_checked_two_partitions() -> None:
    # Rows 0-1 are partition A, rows 2-3 partition B; metric = mean.
    performance = np.array([[1.0, 0.0, 0.5], [1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 1.0, 0.5]])
    result = pbo(performance, n_partitions=2, metric=lambda block: block.mean(axis=0))
    # IS = A picks candidate 0, which ranks last on B (w = 1/4); IS = B picks candidate 1, last on A.
    np.testing.assert_array_equal(result.selected, [0, 1])
    np.testing.assert_allclose(result.relative_ranks, [0.25, 0.25])
    np.testing.assert_allclose(result.logits, [math.log(1 / 3)] * 2)
    assert result.pbo == 1.0


@pytest.mark.parametrize(
    ("performance", "kwargs", "match"),
    [
        (np.zeros((32, 4)), {"n_partitions": 5}, "even"),
        (np.zeros((3, 4)), {"n_partitions": 4}, "too few"),
        (np.zeros((32, 1)), {}, "2 candidate"),
        (np.full((32, 3), np.nan), {}, "non-finite"),
        (np.zeros(32), {}, "2-D"),
        (np.ones((32, 3)), {"metric": lambda block: block.mean()}, "one score"),
        (np.ones((32, 3)), {"metric": lambda block: np.full(3, np.nan)}, "NaN"),
    ],
)
def test_pbo_rejects_bad_input(performance: np.ndarray, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        pbo(performance, **({"n_partitions": 4} | kwargs))
