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

**Measurements** (:class:`BehaviourMeasurement`) reach the controller once per PPO rollout
(:meth:`AdaptiveRewardController.observe`, from :class:`training.ppo.TrainingMonitor`, which replays the
greedy policy over the rollout's bars) and once per training cycle from the selection window
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
"""

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

__all__ = [
    "LEGACY_CONTROLLER_KEYS",
    "AdaptiveRewardController",
    "BehaviourMeasurement",
    "ControllerSnapshot",
    "ControllerTrajectory",
    "RewardControllerConfig",
    "plot_trajectory",
    "regime_target",
]

_STATE_VERSION = 2
LEGACY_CONTROLLER_KEYS: frozenset[str] = frozenset({"target_hold_rate", "target_bounds", "hold_rate_span"})
"""Settings of the first controller design (it regulated the sampled hold-action rate). A checkpoint written
by it still loads (they are dropped, see :class:`RewardControllerConfig`); a config that sets them is refused."""


class RewardControllerConfig(BaseModel):
    """Settings of the dual-lane adaptive reward controller; see the module docstring for the rules."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    enabled: bool = Field(
        True,
        description="Shape the reward at all; false trains on the PnL alone (no hold bonus, no ticket cost).",
    )
    target_trades_per_day: float = Field(
        15.0,
        gt=0.0,
        description=(
            "Greedy orders per session the controller steers to at a regime score of 0: the middle of the "
            "gate's 5-25 band and the low end of the reference plan's 15-20 (agents here overshoot more often "
            "than they undershoot)."
        ),
    )
    regime_sensitivity: float = Field(
        6.0,
        ge=0.0,
        description=(
            "Trades per day removed from the target per unit of regime score: target = target_trades_per_day "
            "- regime_sensitivity * score, clipped to trades_per_day_bounds (turbulent markets: fewer trades)."
        ),
    )
    trades_per_day_bounds: tuple[float, float] = Field(
        (10.0, 20.0),
        description="Inclusive bounds (low, high) of the regime-moved target; inside the gate's trades/day band.",
    )
    bonus_gain: float = Field(
        1.0, ge=0.0, description="Fast-lane gain on the relative trades error (hold bonus)."
    )
    cost_gain: float = Field(
        1.0, ge=0.0, description="Fast-lane gain on the relative trades error (ticket cost)."
    )
    base_hold_bonus: float = Field(
        0.01,
        ge=0.0,
        description="Hold bonus per idle step at zero error and zero slow adjustment (reward units).",
    )
    base_ticket_cost: float = Field(
        1.0, ge=0.0, description="Ticket cost at zero error and zero slow adjustment (times the env's scale)."
    )
    probe_sessions: int = Field(
        6,
        ge=1,
        description="Training sessions the greedy policy trades after each rollout to measure its trades per "
        "day (in turn through the training window; about 5% of the training time at the defaults).",
    )
    trades_span: int = Field(
        3,
        ge=1,
        description="Span in rollouts of the EWM of the greedy trades per day (smoothing 2 / (span + 1)).",
    )
    slow_interval: int = Field(1, ge=1, description="Rollouts between slow-lane (integral) updates.")
    slow_gain: float = Field(
        0.1,
        ge=0.0,
        description="Integral gain: each slow update adds slow_gain times the relative error (an idle agent "
        "saturates the lane in 5 updates).",
    )
    slow_clamp: float = Field(
        0.5, gt=0.0, description="The slow adjustment is clamped to [-slow_clamp, slow_clamp] (anti-wind-up)."
    )
    cycle_gain: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Outer loop: after each cycle the setpoint scale is multiplied by (selection target / "
        "selection greedy trades per day) ** cycle_gain; 0 switches the outer loop off, 1 corrects in one step.",
    )
    max_target_scale: float = Field(
        3.0, ge=1.0, description="The setpoint scale is clamped to [1 / max_target_scale, max_target_scale]."
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_settings(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, Mapping):
            return data
        legacy = sorted(LEGACY_CONTROLLER_KEYS & set(data))
        if not legacy:
            return data
        if info.context and info.context.get("checkpoint"):
            # A checkpoint of the first design: its hold-rate settings have no meaning here; the rest carries over.
            return {key: value for key, value in data.items() if key not in LEGACY_CONTROLLER_KEYS}
        msg = (
            f"controller settings {legacy} belong to the earlier design, which regulated the sampled hold-action "
            "rate; the controller now regulates the greedy policy's trades per day: set target_trades_per_day "
            "and trades_per_day_bounds instead"
        )
        raise ValueError(msg)

    @model_validator(mode="after")
    def _bounds_are_consistent(self) -> "RewardControllerConfig":
        low, high = self.trades_per_day_bounds
        if not (0.0 < low < high):
            msg = f"trades_per_day_bounds must satisfy 0 < low < high, got {self.trades_per_day_bounds}"
            raise ValueError(msg)
        if not (low <= self.target_trades_per_day <= high):
            msg = (
                f"target_trades_per_day {self.target_trades_per_day} lies outside trades_per_day_bounds "
                f"{self.trades_per_day_bounds}"
            )
            raise ValueError(msg)
        return self


def regime_target(config: RewardControllerConfig, regime_score: float) -> float:
    """The target trades per day at ``regime_score``: the base minus the regime slope, within the bounds."""
    low, high = config.trades_per_day_bounds
    return min(high, max(low, config.target_trades_per_day - config.regime_sensitivity * regime_score))


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


@dataclass(frozen=True, slots=True)
class ControllerSnapshot:
    """The controller after one rollout's update, for trajectories, plots and health."""

    steps: int
    rollouts: int
    cycle: int
    regime_score: float
    target_trades_per_day: float
    setpoint_trades_per_day: float
    target_scale: float
    greedy_trades_per_day: float
    sampled_trades_per_day: float
    greedy_idle_rate: float
    greedy_hold_action_rate: float
    sampled_hold_action_rate: float
    smoothed_trades_per_day: float
    error: float
    slow_adjustment: float
    hold_bonus: float
    ticket_cost: float


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


_SNAPSHOT_FIELDS: tuple[str, ...] = tuple(field.name for field in fields(ControllerSnapshot))
_INT_FIELDS = frozenset({"steps", "rollouts", "cycle"})


class ControllerTrajectory:
    """The controller's snapshots, one per rollout, kept as plain Python lists of numbers."""

    __slots__ = ("_columns",)

    def __init__(self) -> None:
        self._columns: dict[str, list[Any]] = {name: [] for name in _SNAPSHOT_FIELDS}

    def __len__(self) -> int:
        return len(self._columns["steps"])

    def append(self, snapshot: ControllerSnapshot) -> None:
        """Record one snapshot."""
        for name in _SNAPSHOT_FIELDS:
            self._columns[name].append(getattr(snapshot, name))

    def to_frame(self) -> pl.DataFrame:
        """One row per rollout; ``steps``, ``rollouts`` and ``cycle`` as Int64, every other column Float64."""
        schema = {name: (pl.Int64 if name in _INT_FIELDS else pl.Float64) for name in _SNAPSHOT_FIELDS}
        return pl.DataFrame(self._columns, schema=schema).fill_nan(None)

    def to_json(self) -> str:
        """The records as a JSON object of column lists (NaN as null)."""
        return json.dumps(
            {
                name: [None if isinstance(value, float) and math.isnan(value) else value for value in values]
                for name, values in self._columns.items()
            }
        )


def plot_trajectory(
    trajectory: ControllerTrajectory | pl.DataFrame,
    path: Path,
    *,
    title: str = "",
    config: RewardControllerConfig = RewardControllerConfig(),
) -> Path:
    """Write a PNG: greedy vs sampled trades/day against the target, idle shares, bonus and cost (as multiples
    of ``config``'s bases), slow lane, setpoint scale and regime score, per rollout.

    Uses a standalone ``matplotlib.figure.Figure`` with the Agg canvas (no pyplot global state). Returns
    ``path``; raises ``ValueError`` for an empty trajectory.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    frame = trajectory.to_frame() if isinstance(trajectory, ControllerTrajectory) else trajectory
    if frame.height == 0:
        msg = "cannot plot an empty controller trajectory: record at least one rollout"
        raise ValueError(msg)

    def column(name: str) -> Any:
        return frame[name].cast(pl.Float64).fill_null(float("nan")).to_numpy()

    steps = frame["steps"].to_numpy()
    figure = Figure(figsize=(10, 12), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(5, 1, sharex=True)
    greedy = column("greedy_trades_per_day")
    setpoint = column("setpoint_trades_per_day")
    axes[0].plot(steps, greedy, marker="o", label="greedy (deployed)")
    axes[0].plot(steps, column("target_trades_per_day"), linestyle="--", color="black", label="target")
    axes[0].plot(steps, setpoint, linestyle=":", color="gray", label="setpoint (target x outer-loop scale)")
    axes[0].set_ylim(0.0, 1.4 * max(float(np.nanmax(greedy)), float(np.nanmax(setpoint)), 1.0))
    axes[0].set_ylabel("greedy trades / day")
    sampled_axis = axes[0].twinx()
    sampled_axis.plot(steps, column("sampled_trades_per_day"), color="tab:orange", alpha=0.5, label="sampled")
    sampled_axis.set_ylabel("sampled (exploring) trades / day", color="tab:orange")
    axes[0].legend(loc="upper right", fontsize="small")
    axes[1].plot(steps, column("greedy_idle_rate"), marker="o", label="greedy idle share (no order)")
    axes[1].plot(steps, column("greedy_hold_action_rate"), label="greedy hold/hold share")
    axes[1].plot(steps, column("sampled_hold_action_rate"), alpha=0.6, label="sampled hold/hold share")
    axes[1].set_ylim(0.0, 1.02)
    axes[1].set_ylabel("share of steps")
    axes[1].legend(loc="center right", fontsize="small")
    bonus_base = config.base_hold_bonus or 1.0
    cost_base = config.base_ticket_cost or 1.0
    axes[2].plot(steps, column("hold_bonus") / bonus_base, color="tab:green", label="hold bonus / base")
    axes[2].plot(
        steps, column("ticket_cost") / cost_base, color="tab:red", linestyle="--", label="ticket cost / base"
    )
    axes[2].axhline(1.0, color="gray", linewidth=0.8)
    axes[2].set_ylabel("output / base")
    axes[2].legend(loc="upper right", fontsize="small")
    axes[3].plot(steps, column("slow_adjustment"), label="slow lane")
    axes[3].plot(steps, column("error"), alpha=0.6, label="relative error")
    axes[3].set_ylim(-1.05, 1.05)
    axes[3].legend(loc="upper right", fontsize="small")
    axes[3].set_ylabel("lanes")
    axes[4].plot(steps, column("regime_score"), label="regime score")
    axes[4].set_ylim(-1.05, 1.05)
    axes[4].set_ylabel("regime score")
    offset_axis = axes[4].twinx()
    offset_axis.plot(steps, column("target_scale"), color="tab:purple", label="setpoint scale")
    offset_axis.set_ylabel("setpoint scale (outer loop)")
    axes[4].set_xlabel("env step")
    for axis in axes:
        axis.grid(alpha=0.3)
    figure.suptitle(title or "Adaptive reward controller (per rollout)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100)
    return path
