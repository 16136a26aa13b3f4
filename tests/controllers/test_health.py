"""Tests for controllers/health.py: the reward controller's health figures and score."""

import math

import polars as pl
import pytest

from controllers.health import HealthWeights, controller_health
from controllers.reward import AdaptiveRewardController
from controllers.reward_config import RewardControllerConfig
from controllers.trajectory import ControllerTrajectory
from tests.controllers.support import DECISIONS, observe

CONFIG = RewardControllerConfig()


def trajectory(trades: list[float], regimes: list[float] | None = None) -> pl.DataFrame:
    controller = AdaptiveRewardController(CONFIG)
    recorded = ControllerTrajectory()
    for index, value in enumerate(trades):
        regime = 0.0 if regimes is None else regimes[index]
        recorded.append(observe(controller, value, regime_score=regime))
    return recorded.to_frame()


def test_a_controller_on_target_is_healthy() -> None:
    regimes = [0.5 * math.sin(index) for index in range(12)]
    frame = trajectory([15.0 - 6.0 * regime for regime in regimes], regimes)
    health = controller_health(
        frame,
        CONFIG,
        decisions_per_session=DECISIONS,
        selection={"trades_per_day": 15.0, "regime_score_mean": 0.0},
    )
    assert health.rollouts == 12
    assert health.trades_error < 0.02
    assert health.selection_trades_error == 0.0
    assert health.saturation_share == 0.0
    assert health.target_follows_regime == pytest.approx(1.0)
    assert health.behaviour_follows_target > 0.99
    assert health.score > 0.9


def test_a_collapsed_agent_is_unhealthy() -> None:
    frame = trajectory([0.0] * 12)
    health = controller_health(
        frame,
        CONFIG,
        decisions_per_session=DECISIONS,
        selection={"trades_per_day": 0.0, "regime_score_mean": 0.0},
    )
    assert health.trades_error == pytest.approx(1.0)
    assert health.selection_trades_error == pytest.approx(1.0)
    assert health.idle_error == pytest.approx(15.0 / DECISIONS)
    assert health.saturation_share == 1.0  # both outputs at their zero floor the whole time
    assert math.isnan(health.behaviour_follows_target)  # constant: undefined, left out of the score
    assert health.score < 0.5
    assert health.score == pytest.approx((0.4 * 0.0 + 0.2 * 0.0 + 0.2 * 1.0) / 0.8)


def test_oscillating_outputs_lower_stability() -> None:
    calm = controller_health(trajectory([17.0] * 6), CONFIG, decisions_per_session=DECISIONS)
    swinging = controller_health(
        trajectory([5.0, 40.0, 5.0, 40.0, 5.0, 40.0]), CONFIG, decisions_per_session=DECISIONS
    )
    assert calm.oscillation == 0.0
    assert swinging.oscillation == 1.0
    assert swinging.score < calm.score


def test_without_selection_the_training_error_counts() -> None:
    health = controller_health(trajectory([7.5] * 4), CONFIG, decisions_per_session=DECISIONS)
    assert math.isnan(health.selection_trades_error)
    assert health.trades_error == pytest.approx(0.5, abs=0.01)
    metrics = health.as_metrics()
    assert metrics["controller_health.score"] == health.score
    assert set(metrics) == {f"controller_health.{name}" for name in health.__dataclass_fields__}


def test_weights_change_the_score_and_empty_trajectories_are_refused() -> None:
    frame = trajectory([0.0] * 6)
    only_stability = HealthWeights(achievement=0.0, saturation=0.0, stability=1.0, responsiveness=0.0)
    assert (
        controller_health(frame, CONFIG, decisions_per_session=DECISIONS, weights=only_stability).score == 1.0
    )
    with pytest.raises(ValueError, match="at least one rollout"):
        controller_health(frame.head(0), CONFIG, decisions_per_session=DECISIONS)
