"""Settings of the adaptive reward controller and the regime-moved target trades per day they define.

:class:`RewardControllerConfig` holds the gains, bases, spans and bounds of the dual-lane controller; the
rules that use them are in :mod:`controllers.reward`. :func:`regime_target` is the target rule alone, shared
by the controller and by its health score (:mod:`controllers.health`).
"""

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

__all__ = [
    "LEGACY_CONTROLLER_KEYS",
    "RewardControllerConfig",
    "regime_target",
]

LEGACY_CONTROLLER_KEYS: frozenset[str] = frozenset({"target_hold_rate", "target_bounds", "hold_rate_span"})
"""Settings of the first controller design (it regulated the sampled hold-action rate). A checkpoint written
by it still loads (they are dropped, see :class:`RewardControllerConfig`); a config that sets them is refused."""


class RewardControllerConfig(BaseModel):
    """Settings of the dual-lane adaptive reward controller; see :mod:`controllers.reward` for the rules."""

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
