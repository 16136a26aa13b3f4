import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controllers.reward import (
    AdaptiveRewardController,
    ControllerSnapshot,
    ControllerTrajectory,
    RewardControllerConfig,
    plot_trajectory,
)

SESSION_STEPS = 390


def run(controller: AdaptiveRewardController, held: bool, steps: int, regime_score: float = 0.0) -> None:
    for _ in range(steps):
        controller.update(held, regime_score)


def test_fresh_controller_is_neutral() -> None:
    config = RewardControllerConfig()
    controller = AdaptiveRewardController(config)
    assert controller.hold_rate == config.target_hold_rate
    assert controller.hold_bonus == config.base_hold_bonus
    assert controller.ticket_cost == config.base_ticket_cost
    assert controller.slow_adjustment == 0.0
    assert controller.steps == 0


def test_hold_rate_is_an_ewm_with_the_configured_span() -> None:
    config = RewardControllerConfig(hold_rate_span=9)
    controller = AdaptiveRewardController(config)
    alpha = 2.0 / 10.0
    controller.update(True, 0.0)
    assert controller.hold_rate == pytest.approx(0.55 + alpha * 0.45, abs=1e-15)
    controller.update(False, 0.0)
    assert controller.hold_rate == pytest.approx((0.55 + alpha * 0.45) * (1 - alpha), abs=1e-15)


def test_all_hold_episode_moves_the_adjustment_toward_trading() -> None:
    config = RewardControllerConfig()
    controller = AdaptiveRewardController(config)
    run(controller, True, SESSION_STEPS)
    assert controller.hold_rate > controller.target_hold_rate
    assert controller.slow_adjustment > 0.0
    assert controller.hold_bonus < config.base_hold_bonus
    assert controller.ticket_cost < config.base_ticket_cost


def test_over_trading_episode_raises_the_cost() -> None:
    config = RewardControllerConfig()
    controller = AdaptiveRewardController(config)
    run(controller, False, SESSION_STEPS)
    assert controller.hold_rate < controller.target_hold_rate
    assert controller.slow_adjustment < 0.0
    assert controller.ticket_cost > config.base_ticket_cost
    assert controller.hold_bonus > config.base_hold_bonus


def test_outputs_follow_the_documented_formula() -> None:
    config = RewardControllerConfig(bonus_gain=0.3, cost_gain=0.7)
    controller = AdaptiveRewardController(config)
    for step in range(137):
        controller.update(step % 3 == 0, 0.25)
    error = controller.hold_rate - controller.target_hold_rate
    slow = controller.slow_adjustment
    assert controller.target_hold_rate == pytest.approx(0.55 + 0.1 * 0.25)
    assert controller.hold_bonus == pytest.approx(0.01 * max(0.0, 1 - 0.3 * error - slow), rel=1e-12)
    assert controller.ticket_cost == pytest.approx(0.50 * max(0.0, 1 - 0.7 * error - slow), rel=1e-12)


def test_slow_lane_integrates_the_interval_mean_error_every_interval() -> None:
    controller = AdaptiveRewardController()
    run(controller, True, 24)
    assert controller.slow_adjustment == 0.0
    controller.update(True, 0.0)
    assert controller.slow_adjustment == pytest.approx(0.05 * (1.0 - 0.55), rel=1e-12)
    run(controller, False, 24)
    assert controller.slow_adjustment == pytest.approx(0.05 * 0.45, rel=1e-12)
    controller.update(False, 0.0)
    assert controller.slow_adjustment == pytest.approx(0.05 * 0.45 - 0.05 * 0.55, rel=1e-12)


def test_slow_lane_saturates_exactly_at_the_clamp() -> None:
    controller = AdaptiveRewardController()
    run(controller, True, 5_000)
    assert controller.slow_adjustment == 0.5
    run(controller, False, 10_000)
    assert controller.slow_adjustment == -0.5


def test_saturated_slow_lane_unwinds_on_the_first_reversed_interval() -> None:
    # A naive integrator would have accumulated 0.05 * 0.45 * 400 = 9.0 here and stay pinned for hundreds of
    # intervals; the clamped state moves off the clamp after one interval of the reversed error.
    controller = AdaptiveRewardController()
    run(controller, True, 10_000)
    assert controller.slow_adjustment == 0.5
    run(controller, False, 25)
    assert controller.slow_adjustment == pytest.approx(0.5 - 0.05 * 0.55, rel=1e-12)


def test_no_integration_while_both_outputs_sit_at_zero() -> None:
    config = RewardControllerConfig(bonus_gain=5.0, cost_gain=5.0)
    controller = AdaptiveRewardController(config)
    run(controller, True, 2_000)
    assert controller.hold_bonus == 0.0
    assert controller.ticket_cost == 0.0
    frozen_at = controller.slow_adjustment
    assert 0.0 < frozen_at < config.slow_clamp
    run(controller, True, 2_000)
    assert controller.slow_adjustment == frozen_at
    run(controller, False, 25)
    assert controller.slow_adjustment < frozen_at


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.booleans(), st.floats(min_value=-1.0, max_value=1.0)), min_size=1, max_size=400
    ),
    repeat=st.integers(min_value=1, max_value=30),
)
def test_slow_lane_and_outputs_stay_bounded(steps: list[tuple[bool, float]], repeat: int) -> None:
    config = RewardControllerConfig()
    controller = AdaptiveRewardController(config)
    for held, score in steps:
        for _ in range(repeat):
            controller.update(held, score)
            assert abs(controller.slow_adjustment) <= config.slow_clamp
            assert 0.0 <= controller.hold_rate <= 1.0
            assert math.isfinite(controller.hold_bonus) and controller.hold_bonus >= 0.0
            assert math.isfinite(controller.ticket_cost) and controller.ticket_cost >= 0.0


@settings(max_examples=200, deadline=None)
@given(score=st.floats(allow_nan=False), held=st.booleans())
def test_target_never_leaves_its_bounds(score: float, held: bool) -> None:
    controller = AdaptiveRewardController()
    controller.update(held, score)
    assert 0.40 <= controller.target_hold_rate <= 0.75
    expected = min(0.75, max(0.40, 0.55 + 0.1 * score))
    assert controller.target_hold_rate == pytest.approx(expected)


def test_regime_score_moves_the_target() -> None:
    controller = AdaptiveRewardController()
    controller.update(True, 1.0)
    assert controller.target_hold_rate == pytest.approx(0.65)
    controller.update(True, -1.0)
    assert controller.target_hold_rate == pytest.approx(0.45)


def test_nan_regime_score_is_rejected() -> None:
    controller = AdaptiveRewardController()
    with pytest.raises(ValueError, match="NaN"):
        controller.update(True, math.nan)


def test_state_round_trip_gives_identical_subsequent_outputs() -> None:
    original = AdaptiveRewardController()
    for step in range(1_037):
        original.update(step % 7 < 5, math.sin(step / 50.0))
    state = json.loads(json.dumps(original.state_dict()))
    restored = AdaptiveRewardController()
    restored.load_state_dict(state)
    assert restored.snapshot() == original.snapshot()
    for step in range(500):
        held, score = step % 4 == 0, math.cos(step / 30.0)
        original.update(held, score)
        restored.update(held, score)
        assert (restored.hold_bonus, restored.ticket_cost) == (original.hold_bonus, original.ticket_cost)
    assert restored.state_dict() == original.state_dict()


def test_same_inputs_give_identical_trajectories() -> None:
    first, second = AdaptiveRewardController(), AdaptiveRewardController()
    for step in range(2_000):
        held = (step * 7919) % 11 < 6
        first.update(held, 0.3)
        second.update(held, 0.3)
    assert first.state_dict() == second.state_dict()


def test_reset_episode_keeps_the_lanes() -> None:
    controller = AdaptiveRewardController()
    run(controller, True, 300)
    before = controller.state_dict()
    controller.reset_episode()
    after = controller.state_dict()
    assert after["episodes"] == before["episodes"] + 1
    assert {k: v for k, v in after.items() if k != "episodes"} == {
        k: v for k, v in before.items() if k != "episodes"
    }
    controller.reset()
    assert controller.state_dict() == AdaptiveRewardController().state_dict()


def _state() -> dict[str, float | int]:
    controller = AdaptiveRewardController()
    run(controller, True, 60)
    return controller.state_dict()


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda s: s.pop("hold_rate"), "missing keys \\['hold_rate'\\]"),
        (lambda s: s.update(extra=1), "unexpected keys \\['extra'\\]"),
        (lambda s: s.update(steps=1.5), "'steps' must be a non-negative int"),
        (lambda s: s.update(hold_rate="0.5"), "'hold_rate' must be a number"),
        (lambda s: s.update(hold_bonus=math.inf), "'hold_bonus' must be finite"),
        (lambda s: s.update(slow_adjustment=0.7), "beyond slow_clamp"),
        (lambda s: s.update(interval_steps=25), "interval_steps 25 >= slow_interval 25"),
        (lambda s: s.update(target_hold_rate=0.9), "outside target_bounds"),
        (lambda s: s.update(version=99), "version 99"),
    ],
)
def test_bad_state_is_rejected_with_a_clear_error(
    change: Callable[[dict[str, float | int]], object], fragment: str
) -> None:
    state = _state()
    change(state)
    controller = AdaptiveRewardController()
    with pytest.raises(ValueError, match=fragment):
        controller.load_state_dict(state)
    assert controller.steps == 0


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"target_hold_rate": 0.0}, "target_hold_rate"),
        ({"target_hold_rate": 1.0}, "target_hold_rate"),
        ({"bonus_gain": -0.1}, "bonus_gain"),
        ({"cost_gain": -1.0}, "cost_gain"),
        ({"slow_interval": 0}, "slow_interval"),
        ({"slow_clamp": 0.0}, "slow_clamp"),
        ({"hold_rate_span": 0}, "hold_rate_span"),
        ({"target_bounds": (0.7, 0.5)}, "0 < low < high < 1"),
        ({"target_hold_rate": 0.3}, "outside target_bounds"),
        ({"slow_gain": math.nan}, "slow_gain"),
        ({"hold_bonus": 0.1}, "hold_bonus"),
    ],
)
def test_bad_config_raises(overrides: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        RewardControllerConfig.model_validate(overrides)


def test_config_is_frozen() -> None:
    config = RewardControllerConfig()
    with pytest.raises(ValueError, match="frozen"):
        config.bonus_gain = 1.0  # type: ignore[misc]


def test_trajectory_records_every_n_steps_and_builds_a_frame() -> None:
    controller = AdaptiveRewardController()
    trajectory = ControllerTrajectory(every=10)
    for step in range(105):
        controller.update(step % 2 == 0, -0.5)
        trajectory.observe(controller)
    frame = trajectory.to_frame()
    assert frame.height == len(trajectory) == 10
    assert frame["steps"].to_list() == list(range(10, 101, 10))
    assert frame.schema["steps"] == pl.Int64
    assert frame.schema["hold_bonus"] == pl.Float64
    assert frame["target_hold_rate"].to_list() == pytest.approx([0.50] * 10)
    assert frame.row(-1, named=True)["steps"] == 100
    trajectory.record(controller)
    assert trajectory.to_frame().row(-1, named=True) == {
        name: getattr(controller.snapshot(), name) for name in ControllerSnapshot.__dataclass_fields__
    }
    assert json.loads(trajectory.to_json())["steps"][-1] == 105


def test_empty_trajectory_frame_has_the_schema() -> None:
    frame = ControllerTrajectory().to_frame()
    assert frame.height == 0
    assert frame.columns[:3] == ["steps", "episodes", "hold_rate"]


def test_plot_trajectory_writes_a_png(tmp_path: Path) -> None:
    controller = AdaptiveRewardController()
    trajectory = ControllerTrajectory(every=5)
    for step in range(400):
        controller.update(step < 200, math.sin(step / 40.0))
        trajectory.observe(controller)
    path = plot_trajectory(trajectory, tmp_path / "plots" / "controller.png")
    assert path == tmp_path / "plots" / "controller.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000


def test_plot_of_empty_trajectory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        plot_trajectory(ControllerTrajectory(), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
    with pytest.raises(ValueError, match="every"):
        ControllerTrajectory(every=0)


def test_numpy_scalar_inputs_still_give_python_float_outputs() -> None:
    controller = AdaptiveRewardController()
    controller.update(np.True_, np.float32(0.5))
    for value in (controller.hold_bonus, controller.ticket_cost, controller.target_hold_rate, controller.hold_rate):
        assert type(value) is float
    reference = AdaptiveRewardController()
    reference.update(True, float(np.float32(0.5)))
    assert controller.state_dict() == reference.state_dict()
