"""Adaptive reward controller: hold bonus and ticket cost regulated so the agent's hold rate tracks a target.

PPO agents on the two-ticker task tend to collapse into holding almost every step. The env adds a hold bonus
to the reward of a step where both tickers' actions were hold and charges a ticket cost per trade; this
controller sets both sizes every step so that the hold rate follows a target hold rate.

Signals (all plain Python floats, updated once per env step by :meth:`AdaptiveRewardController.update`):

* **Hold rate** ``h``: an exponential moving average of the per-step hold indicator (1.0 when both tickers
  held, else 0.0) with span ``hold_rate_span`` (default 200 steps), i.e. smoothing factor
  ``alpha = 2 / (span + 1)``: ``h <- h + alpha * (held - h)``. It starts at the base target, so a fresh
  controller begins neutral (zero error, outputs equal to the bases).
* **Target** ``target = clip(target_hold_rate + regime_sensitivity * regime_score, *target_bounds)``:
  it moves with the market regime score (see :mod:`controllers.regime`; a positive score means turbulent or
  incoherent markets, where holding more is appropriate) and never leaves ``target_bounds``.
* **Error** ``e = h - target``: positive means the agent holds too much, negative means it over-trades.
* **Fast lane** (proportional, every step): ``bonus_gain * e`` and ``cost_gain * e``.
* **Slow lane** (integral, every ``slow_interval`` steps):
  ``slow <- clip(slow + slow_gain * m, -slow_clamp, slow_clamp)`` where ``m`` is the mean of the raw per-step
  error ``held_t - target_t`` over the steps of the interval (the interval's hold fraction minus its mean
  target). It integrates the raw indicator, not the smoothed rate, so a reversal of behaviour shows in the
  very next slow update. Anti-wind-up: the integrator state itself is
  clamped to ``[-slow_clamp, slow_clamp]`` (no hidden accumulator beyond the clamp), so after saturation a
  reversed error unwinds it on the next slow update; and integration is conditional: an increment that would
  push further in a direction where both outputs already sit at their zero floor is skipped.
* **Outputs**::

      hold_bonus  = base_hold_bonus  * max(0, 1 - bonus_gain * e - slow)
      ticket_cost = base_ticket_cost * max(0, 1 - cost_gain  * e - slow)

  Holding too much (``e > 0``, and ``slow > 0`` once it persists) lowers both the bonus for holding and the
  cost of a trade, pushing the agent toward trading; over-trading (``e < 0``) raises the ticket cost (and the
  hold bonus) above their bases. Both outputs are finite and non-negative: ``e`` lies in ``[-1, 1]`` and
  ``slow`` in ``[-slow_clamp, slow_clamp]``, so each is at most ``base * (1 + gain + slow_clamp)``. (The code
  evaluates the same expression as ``intercept - slope * e`` with ``intercept = base * (1 - slow)`` refreshed
  by the slow lane and ``slope = base * gain``, to keep the per-step cost to a few float operations.)

Episodes: nothing is per-episode. The hold rate, both lanes and the slow interval's partial sums persist
across episodes (and, through :meth:`~AdaptiveRewardController.state_dict`, across warm-started training
cycles); :meth:`~AdaptiveRewardController.reset_episode` only counts episodes for the trajectory log.
"""

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "AdaptiveRewardController",
    "ControllerSnapshot",
    "ControllerTrajectory",
    "RewardControllerConfig",
    "plot_trajectory",
]

_STATE_VERSION = 1


class RewardControllerConfig(BaseModel):
    """Settings of the dual-lane adaptive reward controller (defaults from the issue)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    target_hold_rate: float = Field(
        0.55, gt=0.0, lt=1.0, description="Base target hold rate, before the regime score moves it."
    )
    bonus_gain: float = Field(
        0.4, ge=0.0, description="Fast-lane proportional gain on the hold-rate error for the hold bonus."
    )
    cost_gain: float = Field(
        0.4, ge=0.0, description="Fast-lane proportional gain on the hold-rate error for the ticket cost."
    )
    base_hold_bonus: float = Field(
        0.01, ge=0.0, description="Hold bonus at zero error and zero slow adjustment (reward units per step)."
    )
    base_ticket_cost: float = Field(
        0.50, ge=0.0, description="Ticket cost at zero error and zero slow adjustment (reward per trade)."
    )
    slow_interval: int = Field(25, ge=1, description="Steps between slow-lane (integral) updates.")
    slow_gain: float = Field(
        0.05,
        ge=0.0,
        description=(
            "Integral gain: each slow update adds slow_gain times the interval's mean error (hold fraction "
            "minus mean target). At the default 0.05 an all-hold agent at target 0.55 saturates the lane in "
            "23 updates "
            "(575 steps)."
        ),
    )
    slow_clamp: float = Field(
        0.5, gt=0.0, description="The slow adjustment is clamped to [-slow_clamp, slow_clamp] (anti-wind-up)."
    )
    hold_rate_span: int = Field(
        200, ge=1, description="Span of the hold-rate EWM in steps: smoothing factor 2 / (span + 1)."
    )
    regime_sensitivity: float = Field(
        0.1, ge=0.0, description="Target = target_hold_rate + regime_sensitivity * regime score, clamped."
    )
    target_bounds: tuple[float, float] = Field(
        (0.40, 0.75), description="Inclusive bounds (low, high) of the regime-moved target hold rate."
    )

    @model_validator(mode="after")
    def _bounds_are_consistent(self) -> "RewardControllerConfig":
        low, high = self.target_bounds
        if not (0.0 < low < high < 1.0):
            msg = f"target_bounds must satisfy 0 < low < high < 1, got {self.target_bounds}"
            raise ValueError(msg)
        if not (low <= self.target_hold_rate <= high):
            msg = f"target_hold_rate {self.target_hold_rate} lies outside target_bounds {self.target_bounds}"
            raise ValueError(msg)
        return self


@dataclass(frozen=True, slots=True)
class ControllerSnapshot:
    """The controller's values after one step, for logging trajectories."""

    steps: int
    episodes: int
    hold_rate: float
    target_hold_rate: float
    hold_rate_error: float
    slow_adjustment: float
    hold_bonus: float
    ticket_cost: float
    regime_score: float


# Keys of ``state_dict`` and whether each holds an int (True) or a float (False).
_STATE_KEYS: dict[str, bool] = {
    "version": True,
    "steps": True,
    "episodes": True,
    "interval_steps": True,
    "interval_error_sum": False,
    "hold_rate": False,
    "slow_adjustment": False,
    "target_hold_rate": False,
    "regime_score": False,
    "hold_bonus": False,
    "ticket_cost": False,
}


class AdaptiveRewardController:
    """Dual-lane controller of the hold bonus and ticket cost; see the module docstring for the exact rules.

    Call :meth:`update` once per env step, then read ``hold_bonus`` and ``ticket_cost``. The hot path is plain
    float arithmetic on slot attributes: no numpy, no config lookups, no containers.
    """

    __slots__ = (
        "config",
        "hold_bonus",
        "ticket_cost",
        "target_hold_rate",
        "hold_rate",
        "slow_adjustment",
        "regime_score",
        "steps",
        "episodes",
        "_alpha",
        "_decay",
        "_base_target",
        "_sensitivity",
        "_target_low",
        "_target_high",
        "_bonus_slope",
        "_cost_slope",
        "_bonus_intercept",
        "_cost_intercept",
        "_slow_interval",
        "_slow_step_gain",
        "_slow_clamp",
        "_next_slow_step",
        "_interval_error_sum",
    )

    def __init__(self, config: RewardControllerConfig = RewardControllerConfig()) -> None:
        self.config = config
        self._alpha = 2.0 / (config.hold_rate_span + 1.0)
        self._decay = 1.0 - self._alpha
        self._base_target = float(config.target_hold_rate)
        self._sensitivity = float(config.regime_sensitivity)
        self._target_low = float(config.target_bounds[0])
        self._target_high = float(config.target_bounds[1])
        # base * (1 - gain * e - slow) == intercept - slope * e; the slow lane refreshes the intercepts.
        self._bonus_slope = float(config.base_hold_bonus) * float(config.bonus_gain)
        self._cost_slope = float(config.base_ticket_cost) * float(config.cost_gain)
        self._slow_interval = int(config.slow_interval)
        # slow_gain times the interval's mean error, folded into one multiplier of the interval's error sum.
        self._slow_step_gain = float(config.slow_gain) / config.slow_interval
        self._slow_clamp = float(config.slow_clamp)
        self._reset_state()

    def _reset_state(self) -> None:
        self.hold_rate = self._base_target
        self.target_hold_rate = self._base_target
        self.regime_score = 0.0
        self.steps = 0
        self.episodes = 0
        self._next_slow_step = self._slow_interval
        self._interval_error_sum = 0.0
        self._set_slow_adjustment(0.0)
        self.hold_bonus = self._bonus_intercept
        self.ticket_cost = self._cost_intercept

    def _set_slow_adjustment(self, slow: float) -> None:
        self.slow_adjustment = slow
        self._bonus_intercept = self.config.base_hold_bonus * (1.0 - slow)
        self._cost_intercept = self.config.base_ticket_cost * (1.0 - slow)

    def update(self, held: bool, regime_score: float) -> None:
        """Advance one env step: ``held`` is True when both tickers' actions were hold this step.

        ``regime_score`` is the current market regime score (nominally in [-1, 1]; any finite value is
        accepted because the target is clamped to ``target_bounds``). A NaN score raises ``ValueError``. Numpy
        scalars are converted to Python floats (cheaper still: pass Python floats, e.g. from ``array.tolist()``).
        """
        regime_score = float(regime_score)
        target = self._base_target + self._sensitivity * regime_score
        if target < self._target_low:
            target = self._target_low
        elif target > self._target_high:
            target = self._target_high
        elif target != target:
            msg = f"regime_score must not be NaN (step {self.steps})"
            raise ValueError(msg)
        if held:
            rate = self.hold_rate * self._decay + self._alpha
            self._interval_error_sum += 1.0 - target
        else:
            rate = self.hold_rate * self._decay
            self._interval_error_sum -= target
        self.hold_rate = rate
        self.target_hold_rate = target
        self.regime_score = regime_score
        error = rate - target
        steps = self.steps + 1
        self.steps = steps
        if steps == self._next_slow_step:
            self._integrate(error)
        bonus = self._bonus_intercept - self._bonus_slope * error
        self.hold_bonus = bonus if bonus > 0.0 else 0.0
        cost = self._cost_intercept - self._cost_slope * error
        self.ticket_cost = cost if cost > 0.0 else 0.0

    def _integrate(self, error: float) -> None:
        """The slow lane's update at the end of an interval, with clamping and conditional integration."""
        increment = self._slow_step_gain * self._interval_error_sum
        self._interval_error_sum = 0.0
        self._next_slow_step += self._slow_interval
        if (
            increment > 0.0
            and self._bonus_intercept - self._bonus_slope * error <= 0.0
            and self._cost_intercept - self._cost_slope * error <= 0.0
        ):
            # Both outputs already sit at their zero floor: integrating further would only wind up.
            return
        slow = self.slow_adjustment + increment
        if slow > self._slow_clamp:
            slow = self._slow_clamp
        elif slow < -self._slow_clamp:
            slow = -self._slow_clamp
        self._set_slow_adjustment(slow)

    @property
    def hold_rate_error(self) -> float:
        """Current hold-rate error: hold rate minus target (positive = holding too much)."""
        return self.hold_rate - self.target_hold_rate

    def reset_episode(self) -> None:
        """Mark an episode boundary: only the counter moves; the hold rate and both lanes persist."""
        self.episodes += 1

    def reset(self) -> None:
        """Return to the freshly constructed state (hold rate at the base target, lanes at zero)."""
        self._reset_state()

    def state_dict(self) -> dict[str, float | int]:
        """The full controller state as a JSON-serializable flat dict (saved with each checkpoint)."""
        return {
            "version": _STATE_VERSION,
            "steps": self.steps,
            "episodes": self.episodes,
            "interval_steps": self._slow_interval - (self._next_slow_step - self.steps),
            "interval_error_sum": self._interval_error_sum,
            "hold_rate": self.hold_rate,
            "slow_adjustment": self.slow_adjustment,
            "target_hold_rate": self.target_hold_rate,
            "regime_score": self.regime_score,
            "hold_bonus": self.hold_bonus,
            "ticket_cost": self.ticket_cost,
        }

    def load_state_dict(self, state: Mapping[str, float | int]) -> None:
        """Restore a state from :meth:`state_dict` (warm start); raises ``ValueError`` naming what is wrong.

        The state must come from a controller with a compatible config: its slow adjustment within the clamp,
        its position in the slow interval below the interval, its target within the bounds.
        """
        missing = sorted(set(_STATE_KEYS) - set(state))
        unexpected = sorted(set(state) - set(_STATE_KEYS))
        if missing or unexpected:
            msg = f"controller state has missing keys {missing} and unexpected keys {unexpected}"
            raise ValueError(msg)
        values: dict[str, Any] = {}
        for key, is_int in _STATE_KEYS.items():
            value = state[key]
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
        problems = []
        if values["version"] != _STATE_VERSION:
            problems.append(f"version {values['version']} (expected {_STATE_VERSION})")
        if values["interval_steps"] >= self._slow_interval:
            interval_steps = values["interval_steps"]
            problems.append(f"interval_steps {interval_steps} >= slow_interval {self._slow_interval}")
        if values["interval_steps"] > values["steps"]:
            problems.append(f"interval_steps {values['interval_steps']} > steps {values['steps']}")
        if abs(values["slow_adjustment"]) > self._slow_clamp:
            slow = values["slow_adjustment"]
            problems.append(f"slow_adjustment {slow} beyond slow_clamp {self._slow_clamp}")
        if not 0.0 <= values["hold_rate"] <= 1.0:
            problems.append(f"hold_rate {values['hold_rate']} outside [0, 1]")
        if not self._target_low <= values["target_hold_rate"] <= self._target_high:
            problems.append(
                f"target_hold_rate {values['target_hold_rate']} outside target_bounds "
                f"({self._target_low}, {self._target_high})"
            )
        if values["hold_bonus"] < 0.0 or values["ticket_cost"] < 0.0:
            problems.append("negative hold_bonus or ticket_cost")
        if problems:
            msg = "controller state does not fit this controller's config: " + "; ".join(problems)
            raise ValueError(msg)
        self.steps = values["steps"]
        self.episodes = values["episodes"]
        self._next_slow_step = values["steps"] - values["interval_steps"] + self._slow_interval
        self._interval_error_sum = values["interval_error_sum"]
        self.hold_rate = values["hold_rate"]
        self._set_slow_adjustment(values["slow_adjustment"])
        self.target_hold_rate = values["target_hold_rate"]
        self.regime_score = values["regime_score"]
        self.hold_bonus = values["hold_bonus"]
        self.ticket_cost = values["ticket_cost"]

    def snapshot(self) -> ControllerSnapshot:
        """A frozen record of the current values."""
        return ControllerSnapshot(
            steps=self.steps,
            episodes=self.episodes,
            hold_rate=self.hold_rate,
            target_hold_rate=self.target_hold_rate,
            hold_rate_error=self.hold_rate - self.target_hold_rate,
            slow_adjustment=self.slow_adjustment,
            hold_bonus=self.hold_bonus,
            ticket_cost=self.ticket_cost,
            regime_score=self.regime_score,
        )

    def __repr__(self) -> str:
        return (
            f"AdaptiveRewardController(steps={self.steps}, hold_rate={self.hold_rate:.4f}, "
            f"target={self.target_hold_rate:.4f}, slow={self.slow_adjustment:+.4f}, "
            f"hold_bonus={self.hold_bonus:.6g}, ticket_cost={self.ticket_cost:.6g})"
        )


_SNAPSHOT_FIELDS: tuple[str, ...] = tuple(field.name for field in fields(ControllerSnapshot))
_INT_FIELDS = frozenset({"steps", "episodes"})


class ControllerTrajectory:
    """Snapshots of a controller taken every ``every`` steps, kept as plain Python lists of numbers.

    Call :meth:`observe` after each :meth:`AdaptiveRewardController.update` (it records on every
    ``every``-th call), or :meth:`record` / :meth:`append` to record unconditionally.
    """

    __slots__ = ("every", "_countdown", "_columns")

    def __init__(self, *, every: int = 100) -> None:
        if every < 1:
            msg = f"every must be >= 1, got {every}"
            raise ValueError(msg)
        self.every = every
        self._countdown = every
        self._columns: dict[str, list[float] | list[int]] = {name: [] for name in _SNAPSHOT_FIELDS}

    def __len__(self) -> int:
        return len(self._columns["steps"])

    def observe(self, controller: AdaptiveRewardController) -> None:
        """Count one step; record the controller's values on every ``every``-th call."""
        self._countdown -= 1
        if self._countdown == 0:
            self._countdown = self.every
            self.record(controller)

    def record(self, controller: AdaptiveRewardController) -> None:
        """Record the controller's current values now."""
        self.append(controller.snapshot())

    def append(self, snapshot: ControllerSnapshot) -> None:
        """Record a snapshot taken elsewhere (for example one sent back from a subprocess env)."""
        for name in _SNAPSHOT_FIELDS:
            self._columns[name].append(getattr(snapshot, name))

    def to_frame(self) -> pl.DataFrame:
        """One row per record; ``steps`` and ``episodes`` as Int64, every other column Float64."""
        schema = {name: (pl.Int64 if name in _INT_FIELDS else pl.Float64) for name in _SNAPSHOT_FIELDS}
        return pl.DataFrame(self._columns, schema=schema)

    def to_json(self) -> str:
        """The records as a JSON object of column lists (for an MLflow artifact or a checkpoint)."""
        return json.dumps(self._columns)


def plot_trajectory(trajectory: ControllerTrajectory | pl.DataFrame, path: Path) -> Path:
    """Write a PNG of the trajectory: hold rate vs target, hold bonus, ticket cost, slow lane, regime score.

    Uses a standalone ``matplotlib.figure.Figure`` with the Agg canvas (no pyplot global state). Returns
    ``path``; raises ``ValueError`` for an empty trajectory.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    frame = trajectory.to_frame() if isinstance(trajectory, ControllerTrajectory) else trajectory
    if frame.height == 0:
        msg = "cannot plot an empty controller trajectory: record at least one snapshot"
        raise ValueError(msg)
    steps = frame["steps"].to_numpy()
    figure = Figure(figsize=(10, 11), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(5, 1, sharex=True)
    axes[0].plot(steps, frame["hold_rate"].to_numpy(), label="hold rate (EWM)")
    axes[0].plot(steps, frame["target_hold_rate"].to_numpy(), label="target", linestyle="--")
    axes[0].set_ylabel("hold rate")
    axes[0].set_ylim(0.0, 1.0)
    axes[0].legend(loc="upper right")
    panels = (
        ("hold_bonus", "hold bonus"),
        ("ticket_cost", "ticket cost"),
        ("slow_adjustment", "slow lane"),
        ("regime_score", "regime score"),
    )
    for axis, (column, label) in zip(axes[1:], panels, strict=True):
        axis.plot(steps, frame[column].to_numpy())
        axis.set_ylabel(label)
    axes[4].set_ylim(-1.05, 1.05)
    axes[4].set_xlabel("env step")
    for axis in axes:
        axis.grid(alpha=0.3)
    figure.suptitle("Adaptive reward controller")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100)
    return path
