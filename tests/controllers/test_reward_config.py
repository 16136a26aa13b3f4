"""Tests for controllers/reward_config.py: settings validation, the first design's keys, immutability."""

import math

import pytest

from controllers.reward_config import RewardControllerConfig


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"target_trades_per_day": 0.0}, "target_trades_per_day"),
        ({"bonus_gain": -0.1}, "bonus_gain"),
        ({"cost_gain": -1.0}, "cost_gain"),
        ({"slow_interval": 0}, "slow_interval"),
        ({"slow_clamp": 0.0}, "slow_clamp"),
        ({"trades_span": 0}, "trades_span"),
        ({"probe_sessions": 0}, "probe_sessions"),
        ({"trades_per_day_bounds": (20.0, 10.0)}, "0 < low < high"),
        ({"target_trades_per_day": 30.0}, "outside trades_per_day_bounds"),
        ({"slow_gain": math.nan}, "slow_gain"),
        ({"hold_bonus": 0.1}, "hold_bonus"),
        ({"target_hold_rate": 0.55}, "earlier design.*target_trades_per_day"),
        ({"target_bounds": (0.4, 0.75)}, "earlier design"),
    ],
)
def test_bad_config_raises(overrides: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        RewardControllerConfig.model_validate(overrides)


def test_a_checkpoint_of_the_first_design_reads_without_its_hold_rate_settings() -> None:
    saved = {"target_hold_rate": 0.55, "target_bounds": [0.4, 0.75], "hold_rate_span": 200, "bonus_gain": 0.4}
    config = RewardControllerConfig.model_validate(saved, context={"checkpoint": True})
    assert config.bonus_gain == 0.4
    assert config.target_trades_per_day == 15.0


def test_config_is_frozen() -> None:
    config = RewardControllerConfig()
    with pytest.raises(ValueError, match="frozen"):
        config.bonus_gain = 1.0  # type: ignore[misc]
