"""Tests for controllers/behaviour.py: the per-session and per-step rates of a behaviour measurement."""

import pytest

from controllers.behaviour import BehaviourMeasurement


def test_behaviour_measurement_counts_per_session_and_per_step() -> None:
    measured = BehaviourMeasurement(
        steps=778, orders=36, idle_steps=750, hold_actions=400, decisions_per_session=389.0
    )
    assert measured.trades_per_day == pytest.approx(18.0)
    assert measured.idle_rate == pytest.approx(750 / 778)
    assert measured.hold_action_rate == pytest.approx(400 / 778)
    with pytest.raises(ValueError, match="at least one step"):
        BehaviourMeasurement(steps=0, orders=0, idle_steps=0, hold_actions=0, decisions_per_session=1.0)
    with pytest.raises(ValueError, match="idle steps"):
        BehaviourMeasurement(steps=5, orders=0, idle_steps=6, hold_actions=0, decisions_per_session=1.0)
    with pytest.raises(ValueError, match="decisions_per_session"):
        BehaviourMeasurement(steps=5, orders=1, idle_steps=4, hold_actions=0, decisions_per_session=0.0)
