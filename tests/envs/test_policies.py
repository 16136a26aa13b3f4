"""Tests for envs/policies.py: the flat, buy-and-hold and signal-rule baselines on hand-made observations."""

import numpy as np
import pytest

from envs.policies import BuyAndHoldPolicy, FlatPolicy, SignalRulePolicy


def _observations(rows: list[tuple[float, float, float, float]]) -> np.ndarray:
    """Observations ``(signal_0, signal_1, position_0, position_1)``."""
    return np.asarray(rows, dtype=np.float32)


def test_flat_policy_always_holds() -> None:
    np.testing.assert_array_equal(FlatPolicy().predict(np.zeros((3, 5), dtype=np.float32)), [4, 4, 4])


def test_buy_and_hold_buys_up_to_one_unit_then_holds() -> None:
    observations = _observations([(0, 0, 0.0, 0.0), (0, 0, 1.0, 0.0), (0, 0, 1.0, 1.0), (0, 0, 0.5, 1.0)])
    # action = 3 * code_0 + code_1 with 0 sell, 1 hold, 2 buy
    np.testing.assert_array_equal(BuyAndHoldPolicy().predict(observations), [8, 5, 4, 7])


def test_signal_rule_enters_on_conviction_and_exits_on_reversal() -> None:
    rule = SignalRulePolicy(
        signal_columns=(0, 1), position_columns=(2, 3), entry_threshold=0.5, exit_threshold=0.25
    )
    observations = _observations(
        [
            (0.6, -0.6, 0.0, 0.0),  # strong signal from flat: buy, sell
            (0.3, -0.3, 0.0, 0.0),  # too weak to enter: hold both
            (0.5, -0.5, 0.0, 0.0),  # exactly at the entry threshold: not entered
            (0.6, -0.6, 1.0, -1.0),  # there: hold both
            (-0.1, 0.1, 1.0, -1.0),  # weakened but not reversed past the exit band: keep both
            (-0.25, 0.25, 1.0, -1.0),  # exactly at the exit threshold: keep both
            (-0.3, 0.3, 1.0, -1.0),  # reversed, not strong enough to enter the other side: to flat
            (-0.6, 0.6, 1.0, -1.0),  # strong reversal: toward the other side, one ladder step at a time
            (0.6, 0.6, 0.5, -0.5),  # partial fills: long keeps moving toward +1; the short reversed
        ]
    )
    np.testing.assert_array_equal(rule.predict(observations), [6, 4, 4, 4, 4, 4, 2, 2, 8])
    np.testing.assert_array_equal(rule.targets(observations)[6:], [[0.0, 0.0], [-1.0, 1.0], [1.0, 1.0]])


def test_signal_rule_finds_the_signal_columns_and_checks_them() -> None:
    names = ("NVDA:rsi_14", "NVDA:signal", "MSFT:rsi_14", "MSFT:signal")
    rule = SignalRulePolicy.from_feature_names(names, entry_threshold=0.3, exit_threshold=0.1)
    assert rule.signal_columns == (1, 3)
    assert (rule.entry_threshold, rule.exit_threshold) == (0.3, 0.1)
    with pytest.raises(ValueError, match="found 0"):
        SignalRulePolicy.from_feature_names(("NVDA:rsi_14", "MSFT:rsi_14"))
    with pytest.raises(ValueError, match="outside observations of width 4"):
        SignalRulePolicy(signal_columns=(0, 9)).predict(np.zeros((1, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="entry_threshold"):
        SignalRulePolicy(signal_columns=(0, 1), entry_threshold=-0.1)
    with pytest.raises(ValueError, match="exit_threshold"):
        SignalRulePolicy(signal_columns=(0, 1), exit_threshold=float("nan"))
