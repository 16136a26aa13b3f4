import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controllers.reward import AdaptiveRewardController
from controllers.reward_config import RewardControllerConfig
from tests.controllers.support import behaviour, observe


def test_fresh_controller_is_neutral() -> None:
    config = RewardControllerConfig()
    controller = AdaptiveRewardController(config)
    assert controller.hold_bonus == config.base_hold_bonus
    assert controller.ticket_cost == config.base_ticket_cost
    assert controller.slow_adjustment == 0.0
    assert controller.target_scale == 1.0
    assert controller.target_trades_per_day == 15.0
    assert math.isnan(controller.smoothed_trades_per_day)


def test_a_greedy_policy_that_never_trades_raises_trading_pressure() -> None:
    config = RewardControllerConfig(bonus_gain=0.5, cost_gain=0.5)
    controller = AdaptiveRewardController(config)
    snapshot = observe(controller, 0.0)
    assert snapshot.error == 1.0
    assert controller.slow_adjustment == pytest.approx(config.slow_gain)
    assert controller.hold_bonus < config.base_hold_bonus
    assert controller.ticket_cost < config.base_ticket_cost
    bonus, cost = controller.hold_bonus, controller.ticket_cost
    observe(controller, 0.0)
    assert controller.hold_bonus < bonus and controller.ticket_cost < cost


def test_a_churning_greedy_policy_lowers_trading_pressure() -> None:
    config = RewardControllerConfig()
    controller = AdaptiveRewardController(config)
    snapshot = observe(controller, 200.0)
    assert snapshot.error == -1.0
    assert controller.slow_adjustment == pytest.approx(-config.slow_gain)
    assert controller.hold_bonus > config.base_hold_bonus
    assert controller.ticket_cost > config.base_ticket_cost


def test_a_policy_on_target_leaves_the_outputs_at_their_bases() -> None:
    config = RewardControllerConfig()
    controller = AdaptiveRewardController(config)
    snapshot = observe(controller, 15.0, rollouts=5)
    assert abs(snapshot.error) < 0.01
    assert controller.hold_bonus == pytest.approx(config.base_hold_bonus, rel=0.02)
    assert controller.ticket_cost == pytest.approx(config.base_ticket_cost, rel=0.02)


def test_outputs_follow_the_documented_formula() -> None:
    config = RewardControllerConfig(bonus_gain=0.3, cost_gain=0.7, trades_span=1)
    controller = AdaptiveRewardController(config)
    observe(controller, 9.0, rollouts=3, regime_score=0.5)
    target = 15.0 - 6.0 * 0.5
    error = (target - behaviour(9.0).trades_per_day) / target
    slow = controller.slow_adjustment
    assert slow == pytest.approx(3 * 0.1 * error)
    assert controller.target_trades_per_day == pytest.approx(target)
    assert controller.hold_bonus == pytest.approx(0.01 * max(0.0, 1 - 0.3 * error - slow), rel=1e-12)
    assert controller.ticket_cost == pytest.approx(1.0 * max(0.0, 1 - 0.7 * error - slow), rel=1e-12)


def test_the_measurement_is_smoothed_over_rollouts() -> None:
    controller = AdaptiveRewardController(RewardControllerConfig(trades_span=3))
    observe(controller, 10.0)
    assert controller.smoothed_trades_per_day == pytest.approx(behaviour(10.0).trades_per_day)
    first = controller.smoothed_trades_per_day
    observe(controller, 30.0)
    assert controller.smoothed_trades_per_day == pytest.approx(
        first + 0.5 * (behaviour(30.0).trades_per_day - first)
    )


def test_default_gains_remove_all_shaping_for_a_policy_that_never_trades() -> None:
    controller = AdaptiveRewardController()
    observe(controller, 0.0, rollouts=3)
    assert (controller.hold_bonus, controller.ticket_cost) == (0.0, 0.0)
    assert controller.slow_adjustment == 0.0  # nothing left to lower: the integrator does not wind up


def test_slow_lane_saturates_exactly_at_the_clamp_and_unwinds_at_once() -> None:
    controller = AdaptiveRewardController(
        RewardControllerConfig(trades_span=1, bonus_gain=0.2, cost_gain=0.2)
    )
    observe(controller, 0.0, rollouts=50)
    assert controller.slow_adjustment == 0.5
    observe(controller, 200.0)
    assert controller.slow_adjustment == pytest.approx(0.5 - 0.1)
    observe(controller, 200.0, rollouts=50)
    assert controller.slow_adjustment == -0.5


def test_no_integration_while_both_outputs_sit_at_zero() -> None:
    config = RewardControllerConfig(bonus_gain=5.0, cost_gain=5.0, trades_span=1)
    controller = AdaptiveRewardController(config)
    observe(controller, 0.0)
    assert controller.hold_bonus == 0.0
    assert controller.ticket_cost == 0.0
    frozen_at = controller.slow_adjustment
    observe(controller, 0.0, rollouts=20)
    assert controller.slow_adjustment == frozen_at
    observe(controller, 200.0)
    assert controller.slow_adjustment < frozen_at


@settings(max_examples=60, deadline=None)
@given(
    rollouts=st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=2_000.0), st.floats(min_value=-1e6, max_value=1e6)),
        min_size=1,
        max_size=60,
    )
)
def test_lanes_outputs_and_target_stay_bounded(rollouts: list[tuple[float, float]]) -> None:
    config = RewardControllerConfig()
    controller = AdaptiveRewardController(config)
    for trades, score in rollouts:
        snapshot = observe(controller, trades, regime_score=score)
        assert abs(controller.slow_adjustment) <= config.slow_clamp
        assert -1.0 <= snapshot.error <= 1.0
        assert 10.0 <= controller.target_trades_per_day <= 20.0
        assert (
            0.0
            <= controller.hold_bonus
            <= config.base_hold_bonus * (1 + config.bonus_gain + config.slow_clamp)
        )
        assert (
            0.0
            <= controller.ticket_cost
            <= config.base_ticket_cost * (1 + config.cost_gain + config.slow_clamp)
        )


def test_regime_score_moves_the_target_within_its_bounds() -> None:
    controller = AdaptiveRewardController()
    observe(controller, 15.0, regime_score=0.5)
    assert controller.target_trades_per_day == pytest.approx(12.0)
    observe(controller, 15.0, regime_score=-0.5)
    assert controller.target_trades_per_day == pytest.approx(18.0)
    observe(controller, 15.0, regime_score=-5.0)
    assert controller.target_trades_per_day == 20.0
    observe(controller, 15.0, regime_score=5.0)
    assert controller.target_trades_per_day == 10.0
    with pytest.raises(ValueError, match="finite"):
        observe(controller, 18.0, regime_score=math.nan)


def test_outer_loop_rescales_the_setpoint_toward_the_selection_target_and_clamps_it() -> None:
    config = RewardControllerConfig()
    controller = AdaptiveRewardController(config)
    scale = controller.adjust_target(behaviour(8.0), regime_score=0.0)
    assert scale == pytest.approx((15.0 / behaviour(8.0).trades_per_day) ** 0.5)
    assert scale > 1.0  # trading too little out of sample: steer the training rollouts to trade more
    assert controller.cycle == 1
    observe(controller, 18.0)
    assert controller.setpoint_trades_per_day == pytest.approx(controller.target_trades_per_day * scale)
    assert controller.adjust_target(behaviour(60.0), regime_score=0.0) < scale  # churning: trade less
    for _ in range(20):
        controller.adjust_target(behaviour(0.0), regime_score=0.0)
    assert controller.target_scale == config.max_target_scale
    for _ in range(40):
        controller.adjust_target(behaviour(300.0), regime_score=0.0)
    assert controller.target_scale == pytest.approx(1.0 / config.max_target_scale)
    observe(controller, 15.0, regime_score=1.0)
    assert controller.setpoint_trades_per_day == pytest.approx(10.0 / 3.0)


def test_outer_loop_is_off_at_zero_gain() -> None:
    controller = AdaptiveRewardController(RewardControllerConfig(cycle_gain=0.0))
    assert controller.adjust_target(behaviour(0.0), regime_score=0.0) == 1.0


def test_state_round_trip_gives_identical_subsequent_outputs() -> None:
    original = AdaptiveRewardController()
    for rollout in range(13):
        observe(original, 5.0 + 3.0 * rollout, regime_score=math.sin(rollout))
    original.adjust_target(behaviour(11.0), regime_score=0.2)
    state = json.loads(json.dumps(original.state_dict()))
    restored = AdaptiveRewardController()
    restored.load_state_dict(state)
    assert restored.state_dict() == original.state_dict()
    for rollout in range(7):
        first = observe(original, 40.0 - rollout, regime_score=0.1)
        second = observe(restored, 40.0 - rollout, regime_score=0.1)
        assert first == second
    assert restored.state_dict() == original.state_dict()


def test_a_fresh_state_round_trips_with_no_measurement() -> None:
    state = json.loads(json.dumps(AdaptiveRewardController().state_dict()))
    assert state["smoothed_trades_per_day"] is None
    restored = AdaptiveRewardController()
    restored.load_state_dict(state)
    assert restored.state_dict() == AdaptiveRewardController().state_dict()


def test_a_state_of_the_first_design_migrates() -> None:
    legacy = {
        "version": 1,
        "steps": 49_152,
        "episodes": 120,
        "interval_steps": 3,
        "interval_error_sum": -1.5,
        "hold_rate": 0.13,
        "slow_adjustment": -0.5,
        "target_hold_rate": 0.55,
        "regime_score": 0.2,
        "hold_bonus": 0.017,
        "ticket_cost": 0.86,
    }
    controller = AdaptiveRewardController()
    controller.load_state_dict(legacy)
    assert controller.slow_adjustment == -0.5
    assert controller.steps == 49_152
    assert math.isnan(controller.smoothed_trades_per_day)
    assert controller.target_scale == 1.0


def _state() -> dict[str, Any]:
    controller = AdaptiveRewardController()
    observe(controller, 30.0, rollouts=3)
    return controller.state_dict()


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda s: s.pop("target_scale"), "missing keys \\['target_scale'\\]"),
        (lambda s: s.update(extra=1), "unexpected keys \\['extra'\\]"),
        (lambda s: s.update(steps=1.5), "'steps' must be a non-negative int"),
        (lambda s: s.update(slow_adjustment="0.5"), "'slow_adjustment' must be a number"),
        (lambda s: s.update(hold_bonus=math.inf), "'hold_bonus' must be finite"),
        (lambda s: s.update(slow_adjustment=0.7), "beyond slow_clamp"),
        (lambda s: s.update(target_scale=3.5), "target_scale 3.5 outside"),
        (lambda s: s.update(setpoint_trades_per_day=0.0), "setpoint_trades_per_day 0.0 <= 0"),
        (lambda s: s.update(ticket_cost=-0.1), "negative"),
        (lambda s: s.update(version=99), "version 99"),
    ],
)
def test_bad_state_is_rejected_with_a_clear_error(
    change: Callable[[dict[str, Any]], object], fragment: str
) -> None:
    state = _state()
    change(state)
    controller = AdaptiveRewardController()
    with pytest.raises(ValueError, match=fragment):
        controller.load_state_dict(state)
    assert controller.steps == 0
