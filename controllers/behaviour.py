"""Behaviour measurements: what a policy did, or would do, over a stretch of decision steps.

The adaptive reward controller (:mod:`controllers.reward`) is fed one :class:`BehaviourMeasurement` of the
greedy policy per rollout and one of the selection window per cycle; the evaluation reports the same counts.
"""

from dataclasses import dataclass

__all__ = ["BehaviourMeasurement"]


@dataclass(frozen=True, slots=True)
class BehaviourMeasurement:
    """What a policy did, or would do, over ``steps`` decision steps.

    ``orders`` the orders its actions send (a ``buy`` while long sends none), ``idle_steps`` the steps on
    which it sends none, ``hold_actions`` the steps whose action is ``hold/hold``; ``decisions_per_session``
    converts a rate per step into one per session (trading day).
    """

    steps: int
    orders: int
    idle_steps: int
    hold_actions: int
    decisions_per_session: float

    def __post_init__(self) -> None:
        if self.steps < 1:
            msg = f"a behaviour measurement needs at least one step, got {self.steps}"
            raise ValueError(msg)
        if not 0 <= self.idle_steps <= self.steps or not 0 <= self.hold_actions <= self.steps:
            msg = f"idle steps and hold actions must lie in [0, {self.steps}], got {self.idle_steps}, {self.hold_actions}"
            raise ValueError(msg)
        if self.orders < 0 or not self.decisions_per_session > 0.0:
            msg = f"orders must be >= 0 and decisions_per_session > 0, got {self.orders}, {self.decisions_per_session}"
            raise ValueError(msg)

    @property
    def trades_per_day(self) -> float:
        """Orders per session: orders per step times the decision steps of a session."""
        return self.orders / self.steps * self.decisions_per_session

    @property
    def idle_rate(self) -> float:
        """Share of steps with no order (the steps that earn the hold bonus)."""
        return self.idle_steps / self.steps

    @property
    def hold_action_rate(self) -> float:
        """Share of ``hold/hold`` actions (reported, not regulated)."""
        return self.hold_actions / self.steps

