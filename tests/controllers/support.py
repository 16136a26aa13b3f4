"""Shared helpers of the controller tests: greedy behaviour measurements and observed rollouts."""

from controllers.behaviour import BehaviourMeasurement
from controllers.reward import AdaptiveRewardController
from controllers.trajectory import ControllerSnapshot

DECISIONS = 389.0


def behaviour(trades_per_day: float, *, steps: int = 3_890) -> BehaviourMeasurement:
    """A greedy measurement over ``steps`` decision steps trading ``trades_per_day`` orders a session."""
    orders = round(trades_per_day * steps / DECISIONS)
    idle = max(0, steps - orders)
    return BehaviourMeasurement(
        steps=steps, orders=orders, idle_steps=idle, hold_actions=idle // 2, decisions_per_session=DECISIONS
    )


def observe(
    controller: AdaptiveRewardController, trades_per_day: float, rollouts: int = 1, regime_score: float = 0.0
) -> ControllerSnapshot:
    snapshot = None
    for _ in range(rollouts):
        snapshot = controller.observe(
            behaviour(trades_per_day), regime_score=regime_score, steps=controller.steps + 2_048
        )
    assert snapshot is not None
    return snapshot

