"""Adaptive reward controller: hold bonus and ticket cost regulated so the *deployed* agent trades at a target.

PPO agents on the two-ticker task collapse into holding, or churn. The env adds a hold bonus to the reward of
every step on which the agent sends no order and charges a ticket cost per order; this controller sets both
sizes so that the greedy policy, the one that is deployed, trades a target number of times per session.

**What is regulated.** The controlled variable is the greedy policy's **trades per day**: the orders its
argmax actions send per session (the gate's ``trades_per_day`` and the figure a desk watches). A step is
**idle** (a "hold" in the reward's sense) when its action sends no order: ``hold/hold``, but also ``buy``
while already long or ``sell`` while already short. The share of ``hold/hold`` actions is reported too, but
not regulated: a policy that says ``buy`` every minute while long holds its position and places no order,
so that share says little about trading. Exploration makes the *sampled* actions trade far more than the
greedy ones (a uniform policy over the nine actions sends an order on most steps), so the sampled rate is
recorded beside the greedy one and never fed back.

**Measurements** (:class:`~controllers.behaviour.BehaviourMeasurement`) reach the controller once per PPO
rollout (:meth:`AdaptiveRewardController.observe`, from :class:`training.ppo.TrainingMonitor`, which replays
the greedy policy over the rollout's bars) and once per training cycle from the selection window
(:meth:`AdaptiveRewardController.adjust_target`). Per env step the env only reads ``hold_bonus`` and
``ticket_cost``: no control arithmetic runs per step.


**Target** ``target = clip(target_trades_per_day - regime_sensitivity * regime, *trades_per_day_bounds)``,
``regime`` the mean regime score of the rollout's decision bars (:mod:`controllers.regime`: a positive
score is a turbulent or incoherent market, where fewer trades are wanted; a negative one a calm trend, where
more are). The bounds lie inside the gate's trades-per-day band (checked by ``RetrainConfig``). The
**setpoint** the rollouts are steered to is ``max(1, target * target_scale)``: the scale is the outer loop
below.

**Error** ``e = clip((setpoint - tpd) / setpoint, -1, 1)`` with ``tpd`` an EWM over rollouts (span
``trades_span``) of the greedy trades per day: positive means the agent trades too little (holds too much),
negative that it churns; ``e = 1`` is a policy that never trades.

* **Fast lane** (proportional, every rollout): ``bonus_gain * e`` and ``cost_gain * e``.
* **Slow lane** (integral, every ``slow_interval`` rollouts):
  ``slow <- clip(slow + slow_gain * e, -slow_clamp, slow_clamp)``. Anti-wind-up: the integrator state
  itself is clamped (no hidden accumulator beyond the clamp, so a reversed error unwinds it at the next
  update), and integration is conditional: an increment that would push further in a direction where both
  outputs already sit at their zero floor is skipped.
* **Outputs**::

      hold_bonus  = base_hold_bonus  * max(0, 1 - bonus_gain * e - slow)
      ticket_cost = base_ticket_cost * max(0, 1 - cost_gain  * e - slow)

  Trading too little (``e > 0``) lowers the bonus for idling and the cost of a trade; churning raises both
  above their bases. Each output lies in ``[0, base * (1 + gain + slow_clamp)]``.
* **Outer loop** (between cycles, :meth:`adjust_target`): the rollouts measure the greedy policy on
  training sessions, which it has fitted; the deployed behaviour is what it does on sessions it has not seen
  (measured here it traded about half as much out of sample as in sample). After each cycle the greedy
  trades per day on the selection window rescale the setpoint:
  ``scale <- clip(scale * (target_selection / tpd_selection) ** cycle_gain, 1 / max_target_scale,
  max_target_scale)``, so a policy that trades less out of sample than in sample is steered to trade more in
  training. The selection window is the one that picks the cycle; the test window is never read.

Nothing is per-episode: the measurements, both lanes and the scale persist across episodes and, through
:meth:`~AdaptiveRewardController.state_dict`, across warm-started cycles and nights.

With ``enabled: false`` the env gets no controller and the reward is the PnL alone (the benchmark's
"controller off" arm).

The settings live in :mod:`controllers.reward_config`, the measurements in :mod:`controllers.behaviour`, and
the per-rollout snapshots with their trajectory and plot in :mod:`controllers.trajectory`.
"""

import math
from collections.abc import Mapping
from typing import Any

from controllers.behaviour import BehaviourMeasurement
from controllers.reward_config import RewardControllerConfig, regime_target
from controllers.trajectory import ControllerSnapshot

__all__ = ["AdaptiveRewardController"]

_STATE_VERSION = 2


# Keys of ``state_dict`` and whether each holds an int (True) or a float (False).
_STATE_KEYS: dict[str, bool] = {
    "version": True,
    "steps": True,
    "rollouts": True,
    "cycle": True,
    "smoothed_trades_per_day": False,
    "slow_adjustment": False,
    "target_scale": False,
    "target_trades_per_day": False,
    "setpoint_trades_per_day": False,
    "regime_score": False,
    "hold_bonus": False,
    "ticket_cost": False,
}
_NAN = float("nan")


class AdaptiveRewardController:
    """Dual-lane controller of the hold bonus and ticket cost on the greedy policy's trades per day.

    The env reads ``hold_bonus`` and ``ticket_cost`` every step; the training monitor
    calls :meth:`observe` once per rollout with the greedy measurement; the cycle loop calls
    :meth:`adjust_target` after each cycle. See the module docstring for the rules.
    """

    __slots__ = (
        "config",
        "hold_bonus",
        "ticket_cost",
        "slow_adjustment",
        "target_scale",
        "target_trades_per_day",
        "setpoint_trades_per_day",
        "smoothed_trades_per_day",
        "regime_score",
        "steps",
        "rollouts",
        "cycle",
        "_alpha",
    )

    def __init__(self, config: RewardControllerConfig = RewardControllerConfig()) -> None:
        self.config = config
        self._alpha = 2.0 / (config.trades_span + 1.0)
        self._reset_state()

    def _reset_state(self) -> None:
        self.steps = 0
        self.rollouts = 0
        self.cycle = 0
        self.slow_adjustment = 0.0
        self.target_scale = 1.0
        self.regime_score = 0.0
        self.target_trades_per_day = self._target(0.0)
        self.setpoint_trades_per_day = self.target_trades_per_day
        self.smoothed_trades_per_day = _NAN
        self.hold_bonus = float(self.config.base_hold_bonus)
        self.ticket_cost = float(self.config.base_ticket_cost)

    def _target(self, regime_score: float) -> float:
        return regime_target(self.config, regime_score)

    # ------------------------------------------------------------------------------------------------------
    # Per rollout: the control step

    def observe(
        self,
        greedy: BehaviourMeasurement,
        *,
        regime_score: float,
        steps: int,
        sampled_trades_per_day: float = _NAN,
        sampled_hold_action_rate: float = _NAN,
    ) -> ControllerSnapshot:
        """One control step from the greedy policy's behaviour measured after a rollout.

        ``regime_score``: the mean regime score of the measured decision bars (it moves the target);
        ``steps``: the training steps so far (for the record). The sampled figures (what PPO's exploring
        actions did in the rollout) are recorded, never fed back. Returns the snapshot.
        """
        if not math.isfinite(regime_score):
            msg = f"regime_score must be finite, got {regime_score}"
            raise ValueError(msg)
        config = self.config
        self.regime_score = float(regime_score)
        self.steps = int(steps)
        self.rollouts += 1
        self.target_trades_per_day = self._target(self.regime_score)
        self.setpoint_trades_per_day = max(1.0, self.target_trades_per_day * self.target_scale)
        measured = greedy.trades_per_day
        previous = self.smoothed_trades_per_day
        smoothed = measured if math.isnan(previous) else previous + self._alpha * (measured - previous)
        self.smoothed_trades_per_day = smoothed
        setpoint = self.setpoint_trades_per_day
        error = min(1.0, max(-1.0, (setpoint - smoothed) / setpoint))
        if self.rollouts % config.slow_interval == 0:
            self._integrate(error)
        self._set_outputs(error)
        return self._snapshot(
            greedy, sampled_tpd=sampled_trades_per_day, sampled_holds=sampled_hold_action_rate, error=error
        )

    def _outputs(self, error: float, slow: float) -> tuple[float, float]:
        config = self.config
        bonus = config.base_hold_bonus * (1.0 - config.bonus_gain * error - slow)
        cost = config.base_ticket_cost * (1.0 - config.cost_gain * error - slow)
        return max(0.0, bonus), max(0.0, cost)

    def _set_outputs(self, error: float) -> None:
        self.hold_bonus, self.ticket_cost = self._outputs(error, self.slow_adjustment)

    def _integrate(self, error: float) -> None:
        """The slow lane's update, clamped, skipped when both outputs already sit at their zero floor."""
        config = self.config
        increment = config.slow_gain * error
        if increment > 0.0 and self._outputs(error, self.slow_adjustment) == (0.0, 0.0):
            return
        self.slow_adjustment = min(
            config.slow_clamp, max(-config.slow_clamp, self.slow_adjustment + increment)
        )

    # ------------------------------------------------------------------------------------------------------
    # Per cycle: the outer loop

    def adjust_target(self, selection: BehaviourMeasurement, *, regime_score: float) -> float:
        """Rescale the setpoint from the greedy behaviour on the selection window; return the new scale.

        ``regime_score``: the mean regime score of the selection window's decision bars (its target). A
        selection window without trades counts as half a trade per day (the ratio stays finite).
        """
        if not math.isfinite(regime_score):
            msg = f"regime_score must be finite, got {regime_score}"
            raise ValueError(msg)
        config = self.config
        ratio = self._target(regime_score) / max(0.5, selection.trades_per_day)
        scale = self.target_scale * ratio**config.cycle_gain
        self.target_scale = min(config.max_target_scale, max(1.0 / config.max_target_scale, scale))
        self.cycle += 1
        return self.target_scale

    # ------------------------------------------------------------------------------------------------------
    # State

    def reset(self) -> None:
        """Return to the freshly constructed state (lanes at zero, scale 1, no measurement)."""
        self._reset_state()

    def state_dict(self) -> dict[str, float | int | None]:
        """The full controller state as a JSON-serializable flat dict (saved with each checkpoint).

        A smoothed rate that does not exist yet (no rollout observed) is stored as None.
        """
        smoothed = self.smoothed_trades_per_day
        return {
            "version": _STATE_VERSION,
            "steps": self.steps,
            "rollouts": self.rollouts,
            "cycle": self.cycle,
            "smoothed_trades_per_day": None if math.isnan(smoothed) else smoothed,
            "slow_adjustment": self.slow_adjustment,
            "target_scale": self.target_scale,
            "target_trades_per_day": self.target_trades_per_day,
            "setpoint_trades_per_day": self.setpoint_trades_per_day,
            "regime_score": self.regime_score,
            "hold_bonus": self.hold_bonus,
            "ticket_cost": self.ticket_cost,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (warm start); raises ``ValueError`` naming what is wrong.

        A version-1 state (the earlier design, which regulated the sampled hold-action rate) is migrated: its
        slow adjustment and step count carry over, every measurement starts afresh. The state must fit this
        controller's config: slow adjustment within the clamp, scale within its bounds, outputs non-negative.
        """
        if state.get("version") == 1:
            state = _migrate_version_1(state, self)
        missing = sorted(set(_STATE_KEYS) - set(state))
        unexpected = sorted(set(state) - set(_STATE_KEYS))
        if missing or unexpected:
            msg = f"controller state has missing keys {missing} and unexpected keys {unexpected}"
            raise ValueError(msg)
        values: dict[str, Any] = {}
        for key, is_int in _STATE_KEYS.items():
            value = state[key]
            if key == "smoothed_trades_per_day" and value is None:
                values[key] = _NAN
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                msg = f"controller state {key!r} must be a number, got {value!r}"
                raise ValueError(msg)
            if is_int:
                if not isinstance(value, int) or value < 0:
                    msg = f"controller state {key!r} must be a non-negative int, got {value!r}"
                    raise ValueError(msg)
                values[key] = value
            else:
                if not math.isfinite(value):
                    msg = f"controller state {key!r} must be finite, got {value!r}"
                    raise ValueError(msg)
                values[key] = float(value)
        config = self.config
        problems = []
        if values["version"] != _STATE_VERSION:
            problems.append(f"version {values['version']} (expected {_STATE_VERSION})")
        if abs(values["slow_adjustment"]) > config.slow_clamp:
            problems.append(
                f"slow_adjustment {values['slow_adjustment']} beyond slow_clamp {config.slow_clamp}"
            )
        bound = config.max_target_scale
        if not 1.0 / bound - 1e-12 <= values["target_scale"] <= bound + 1e-12:
            problems.append(f"target_scale {values['target_scale']} outside [1/{bound}, {bound}]")
        if values["setpoint_trades_per_day"] <= 0.0:
            problems.append(f"setpoint_trades_per_day {values['setpoint_trades_per_day']} <= 0")
        if values["hold_bonus"] < 0.0 or values["ticket_cost"] < 0.0:
            problems.append("negative hold_bonus or ticket_cost")
        if problems:
            msg = "controller state does not fit this controller's config: " + "; ".join(problems)
            raise ValueError(msg)
        self.steps = values["steps"]
        self.rollouts = values["rollouts"]
        self.cycle = values["cycle"]
        self.smoothed_trades_per_day = values["smoothed_trades_per_day"]
        self.slow_adjustment = values["slow_adjustment"]
        self.target_scale = values["target_scale"]
        self.regime_score = values["regime_score"]
        # The current target and outputs as saved; the next observation recomputes them under this config.
        self.target_trades_per_day = values["target_trades_per_day"]
        self.setpoint_trades_per_day = values["setpoint_trades_per_day"]
        self.hold_bonus = values["hold_bonus"]
        self.ticket_cost = values["ticket_cost"]

    def _snapshot(
        self, greedy: BehaviourMeasurement, *, sampled_tpd: float, sampled_holds: float, error: float
    ) -> ControllerSnapshot:
        return ControllerSnapshot(
            steps=self.steps,
            rollouts=self.rollouts,
            cycle=self.cycle,
            regime_score=self.regime_score,
            target_trades_per_day=self.target_trades_per_day,
            setpoint_trades_per_day=self.setpoint_trades_per_day,
            target_scale=self.target_scale,
            greedy_trades_per_day=greedy.trades_per_day,
            sampled_trades_per_day=sampled_tpd,
            greedy_idle_rate=greedy.idle_rate,
            greedy_hold_action_rate=greedy.hold_action_rate,
            sampled_hold_action_rate=sampled_holds,
            smoothed_trades_per_day=self.smoothed_trades_per_day,
            error=error,
            slow_adjustment=self.slow_adjustment,
            hold_bonus=self.hold_bonus,
            ticket_cost=self.ticket_cost,
        )

    def __repr__(self) -> str:
        return (
            f"AdaptiveRewardController(rollouts={self.rollouts}, tpd={self.smoothed_trades_per_day:.2f}, "
            f"setpoint={self.setpoint_trades_per_day:.2f}, slow={self.slow_adjustment:+.4f}, "
            f"scale={self.target_scale:.3f}, hold_bonus={self.hold_bonus:.6g}, ticket_cost={self.ticket_cost:.6g})"
        )


def _migrate_version_1(state: Mapping[str, Any], controller: AdaptiveRewardController) -> dict[str, Any]:
    """A version-2 state from a version-1 one: the slow lane and step count carry over, nothing measured."""
    slow = state.get("slow_adjustment", 0.0)
    steps = state.get("steps", 0)
    clamp = controller.config.slow_clamp
    return {
        "version": _STATE_VERSION,
        "steps": steps if isinstance(steps, int) and not isinstance(steps, bool) and steps >= 0 else 0,
        "rollouts": 0,
        "cycle": 0,
        "smoothed_trades_per_day": None,
        "slow_adjustment": min(clamp, max(-clamp, float(slow))) if isinstance(slow, int | float) else 0.0,
        "target_scale": 1.0,
        "target_trades_per_day": controller.config.target_trades_per_day,
        "setpoint_trades_per_day": controller.config.target_trades_per_day,
        "regime_score": 0.0,
        "hold_bonus": controller.config.base_hold_bonus,
        "ticket_cost": controller.config.base_ticket_cost,
    }
