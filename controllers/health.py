"""Controller health: is the reward controller doing its job? Per training cycle and per night.

Computed from the controller's trajectory (one row per rollout, :class:`controllers.trajectory.ControllerTrajectory`)
and, when known, the greedy behaviour on the selection window (the deployed figure). Five components:

* **Target achievement**: ``trades_error``, the mean over rollouts of ``|greedy tpd - setpoint| / setpoint``
  (the probe's greedy trades per day on training sessions); ``idle_error``, the mean
  ``|greedy idle share - idle target|`` with ``idle target = 1 - setpoint / decisions per session`` (the idle
  share that trading at the setpoint with one order per trading step gives); and ``selection_trades_error``,
  ``|selection tpd - selection target| / selection target`` for the cycle's greedy policy on the selection
  window. Achievement is ``1 - min(1, error)``, the error being the selection one when known, else the
  training one.
* **Saturation**: ``saturation_share``, the share of rollouts at which the slow lane sits at its clamp, an
  output sits at its zero floor, or the setpoint scale sits at its bound: a saturated controller has run out
  of authority.
* **Parameter stability**: ``bonus_drift`` and ``cost_drift``, ``|last - first| / base`` of the outputs over the
  span, and ``oscillation``, the share of successive changes of the ticket cost that reverse direction
  (0: monotone, 1: a sign flip every rollout). Stability is ``1 - oscillation``.
* **Regime responsiveness**: ``target_follows_regime``, the correlation of the target with minus the regime
  score (1 when the target moves as the regime says; NaN when either is constant), and
  ``behaviour_follows_target``, the correlation of the greedy trades per day with the setpoint.
  Responsiveness is ``(1 + behaviour_follows_target) / 2``, left out of the score when undefined.
* **Health score**: the weighted mean of the defined components (weights in :class:`HealthWeights`), in [0, 1].
"""

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from controllers.reward_config import RewardControllerConfig, regime_target

__all__ = ["ControllerHealth", "HealthWeights", "controller_health"]

_NAN = float("nan")


class HealthWeights(BaseModel):
    """Weights of the health score's components (normalized over the components that are defined)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    achievement: float = Field(0.4, ge=0.0, description="Weight of target achievement.")
    saturation: float = Field(0.2, ge=0.0, description="Weight of 1 - saturation share.")
    stability: float = Field(0.2, ge=0.0, description="Weight of 1 - oscillation.")
    responsiveness: float = Field(0.2, ge=0.0, description="Weight of behaviour following the target.")


@dataclass(frozen=True)
class ControllerHealth:
    """The health components and score (see the module docstring); NaN where a figure is undefined."""

    rollouts: int
    trades_error: float
    idle_error: float
    selection_trades_error: float
    saturation_share: float
    bonus_drift: float
    cost_drift: float
    oscillation: float
    target_follows_regime: float
    behaviour_follows_target: float
    score: float

    def as_metrics(self, prefix: str = "controller_health.") -> dict[str, float]:
        """Every figure as a float metric named ``prefix + field``."""
        return {f"{prefix}{name}": float(value) for name, value in asdict(self).items()}


def _correlation(first: np.ndarray, second: np.ndarray) -> float:
    mask = np.isfinite(first) & np.isfinite(second)
    if mask.sum() < 3:
        return _NAN
    first, second = first[mask], second[mask]
    if np.ptp(first) < 1e-12 or np.ptp(second) < 1e-12:
        return _NAN
    return float(np.corrcoef(first, second)[0, 1])


def _oscillation(values: np.ndarray) -> float:
    changes = np.diff(values)
    changes = changes[np.abs(changes) > 1e-12]
    if changes.size < 2:
        return 0.0
    return float(np.mean(np.sign(changes[1:]) != np.sign(changes[:-1])))


def controller_health(
    trajectory: pl.DataFrame,
    config: RewardControllerConfig,
    *,
    decisions_per_session: float,
    selection: Mapping[str, float] | None = None,
    weights: HealthWeights = HealthWeights(),
) -> ControllerHealth:
    """The controller's health over ``trajectory`` (rows of one cycle, or of a whole night's cycles).

    ``selection``: the greedy policy's evaluation on the selection window (``trades_per_day`` and
    ``regime_score_mean``), or None. Raises ``ValueError`` for an empty trajectory.
    """
    if trajectory.height == 0:
        msg = "controller health needs at least one rollout in the trajectory"
        raise ValueError(msg)

    def column(name: str) -> np.ndarray:
        return trajectory[name].cast(pl.Float64).fill_null(_NAN).to_numpy()

    setpoint = column("setpoint_trades_per_day")
    greedy = column("greedy_trades_per_day")
    trades_error = float(np.nanmean(np.abs(greedy - setpoint) / setpoint))
    idle_target = np.clip(1.0 - setpoint / decisions_per_session, 0.0, 1.0)
    idle_error = float(np.nanmean(np.abs(column("greedy_idle_rate") - idle_target)))
    selection_error = _NAN
    if selection is not None:
        target = regime_target(config, selection["regime_score_mean"])
        selection_error = abs(selection["trades_per_day"] - target) / target
    slow = column("slow_adjustment")
    bonus = column("hold_bonus")
    cost = column("ticket_cost")
    scale = column("target_scale")
    saturated = (
        (np.abs(slow) >= config.slow_clamp - 1e-12)
        | (bonus <= 0.0)
        | (cost <= 0.0)
        | (
            (config.max_target_scale > 1.0)
            & (np.abs(np.log(scale)) >= math.log(config.max_target_scale) - 1e-9)
        )
    )
    saturation_share = float(np.mean(saturated))
    bonus_drift = abs(bonus[-1] - bonus[0]) / config.base_hold_bonus if config.base_hold_bonus > 0 else _NAN
    cost_drift = abs(cost[-1] - cost[0]) / config.base_ticket_cost if config.base_ticket_cost > 0 else _NAN
    oscillation = _oscillation(cost)
    follows_regime = _correlation(column("target_trades_per_day"), -column("regime_score"))
    follows_target = _correlation(greedy, setpoint)
    error = selection_error if math.isfinite(selection_error) else trades_error
    components = {
        "achievement": 1.0 - min(1.0, error),
        "saturation": 1.0 - saturation_share,
        "stability": 1.0 - oscillation,
        "responsiveness": (1.0 + follows_target) / 2.0 if math.isfinite(follows_target) else _NAN,
    }
    weighted = [(getattr(weights, name), value) for name, value in components.items() if math.isfinite(value)]
    total = sum(weight for weight, _ in weighted)
    score = sum(weight * value for weight, value in weighted) / total if total > 0 else _NAN
    return ControllerHealth(
        rollouts=trajectory.height,
        trades_error=trades_error,
        idle_error=idle_error,
        selection_trades_error=selection_error,
        saturation_share=saturation_share,
        bonus_drift=bonus_drift,
        cost_drift=cost_drift,
        oscillation=oscillation,
        target_follows_regime=follows_regime,
        behaviour_follows_target=follows_target,
        score=score,
    )
