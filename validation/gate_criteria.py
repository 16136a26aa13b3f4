"""The promotion gate's vocabulary and configuration: scenario keys, criterion names, :class:`GateCriteria`.

A scenario key is ``"<kind>/<scenario>"`` (:func:`scenario_key`); :data:`CRITERION_METRICS` names the
metric each threshold criterion reads; the policy names (:data:`CANDIDATE`, :data:`PAIRED_COMPARATORS`,
:data:`BASELINE_NAMES`) are those the paired statistics and the report know. :class:`GateCriteria` holds
every threshold and switch of the gate; the rules that apply them are in :mod:`validation.gate`.
"""

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "BASELINE_NAMES",
    "CANDIDATE",
    "CHAMPION_CRITERION",
    "CONTROLLER_HEALTH_CRITERION",
    "CONTROLLER_HEALTH_SCENARIO",
    "CRITERION_METRICS",
    "DEFLATED_SHARPE_CRITERION",
    "NO_CHAMPION_SCENARIO",
    "PAIRED_COMPARATORS",
    "RATIO_CRITERIA",
    "SCENARIO_KINDS",
    "SCENARIO_NAMES",
    "GateCriteria",
    "default_scenario_criteria",
    "scenario_key",
]

SCENARIO_KINDS: tuple[str, ...] = ("held_out", "stress")
SCENARIO_NAMES: tuple[str, ...] = (
    "mixed",
    "high_volatility",
    "low_volatility",
    "trending",
    "correlation_breakdown",
)
CRITERION_METRICS: dict[str, str] = {
    "total_return": "total_return_pct",
    "max_drawdown": "max_drawdown_pct",
    "trades_per_day": "trades_per_day",
    "sharpe": "sharpe",
    "win_rate": "win_rate",
}
"""Criterion name -> the scenario metric it reads."""
CHAMPION_CRITERION = "beats_champion"
DEFLATED_SHARPE_CRITERION = "deflated_sharpe"
CONTROLLER_HEALTH_CRITERION = "controller_health"
CONTROLLER_HEALTH_SCENARIO = "training"
RATIO_CRITERIA: frozenset[str] = frozenset({"sharpe", "win_rate"})
"""Criteria that are ratios over episodes: not judged on scenarios with fewer than ``min_ratio_episodes``."""
PAIRED_COMPARATORS: tuple[str, ...] = ("champion", "flat", "buy_and_hold", "signal_rule")
"""Policies the candidate can be compared with on paired sessions (``paired_baselines`` picks among them)."""
CANDIDATE = "candidate"
NO_CHAMPION_SCENARIO = "all"
BASELINE_NAMES: tuple[str, ...] = ("flat", "buy_and_hold", "signal_rule")
_KEY_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def scenario_key(kind: str, scenario: str) -> str:
    """The gate's key for a scenario: ``"<kind>/<scenario>"`` (``scenario_key("stress", "mixed")``)."""
    return f"{kind}/{scenario}"


def default_scenario_criteria() -> dict[str, tuple[str, ...]]:
    """All criteria on both ``mixed`` scenarios; drawdown and trades per day on every other scenario."""
    every = tuple(CRITERION_METRICS)
    risk = ("max_drawdown", "trades_per_day")
    return {
        scenario_key(kind, name): every if name == "mixed" else risk
        for kind in SCENARIO_KINDS
        for name in SCENARIO_NAMES
    }


class GateCriteria(BaseModel):
    """Thresholds of the promotion gate, which criteria apply where, and how the champion is beaten."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_total_return_pct: float = Field(
        1.0, description="Least total return over a scenario's episodes, percent (criterion total_return)."
    )
    max_drawdown_pct: float = Field(
        2.0, ge=0.0, description="Largest maximum drawdown, percent, a magnitude (criterion max_drawdown)."
    )
    min_trades_per_day: float = Field(
        5.0, ge=0.0, description="Fewest agent orders per session on average (criterion trades_per_day)."
    )
    max_trades_per_day: float = Field(
        25.0, ge=0.0, description="Most agent orders per session on average (criterion trades_per_day)."
    )
    min_sharpe: float = Field(0.6, description="Least Sharpe ratio (criterion sharpe).")
    min_win_rate: float = Field(
        0.65, ge=0.0, le=1.0, description="Least share of winning trades (criterion win_rate)."
    )
    scenario_criteria: dict[str, tuple[str, ...]] = Field(
        default_factory=default_scenario_criteria,
        description="Scenario key '<kind>/<scenario>' -> the criteria (names in CRITERION_METRICS) applied "
        "to it. Scenarios not listed are not gated.",
    )
    required_scenarios: tuple[str, ...] = Field(
        ("held_out/mixed", "stress/mixed"),
        description="Scenarios that must have episodes; an empty or missing one fails the gate.",
    )
    episodes_metric: str = Field(
        "episodes", description="Metric counting a scenario's episodes; 0 marks the scenario empty."
    )
    champion_metric: str = Field(
        "total_return_pct", description="Metric on which the candidate must beat the champion."
    )
    champion_direction: Literal["higher", "lower"] = Field(
        "higher", description="Whether a higher or a lower champion_metric is better."
    )
    champion_margin: float = Field(
        0.0,
        ge=0.0,
        description="Margin in champion_metric's units: beat means candidate > champion + margin (strict).",
    )
    champion_scenarios: tuple[str, ...] | None = Field(
        ("held_out/mixed",),
        description="Scenarios on which the champion must be beaten; None: every gated scenario where both "
        "candidate and champion have episodes.",
    )
    replace_incomparable_champion: bool = Field(
        False,
        description="Let a candidate replace a champion that cannot be evaluated on tonight's observations "
        "(otherwise such a night never promotes); the version and the report say so loudly.",
    )
    min_ratio_episodes: int = Field(
        5,
        ge=1,
        description="Fewest episodes for a scenario to be judged on ratio criteria (sharpe, win_rate); "
        "smaller slices are reported with their count but not judged.",
    )
    paired_scenario: str = Field(
        "held_out/mixed",
        description="Scenario whose per-session returns are paired across policies (the test window).",
    )
    paired_baselines: tuple[Literal["champion", "flat", "buy_and_hold", "signal_rule"], ...] = Field(
        ("champion", "flat", "buy_and_hold"),
        description="Policies the candidate must beat on paired sessions with confidence (criterion "
        "beats_<name>_ci); 'champion' applies only when there is one.",
    )
    paired_confidence: float = Field(
        0.95,
        gt=0.0,
        lt=1.0,
        description="Two-sided confidence of the bootstrap interval of the per-session return difference.",
    )
    paired_margin_pct: float = Field(
        0.0,
        ge=0.0,
        description="The interval's lower bound must exceed this mean per-session return difference, percent.",
    )
    bootstrap_resamples: int = Field(2000, ge=100, description="Bootstrap resamples of the paired sessions.")
    bootstrap_block_sessions: int = Field(
        1, ge=1, description="Consecutive sessions per bootstrap block (1: resample single sessions)."
    )
    bootstrap_seed: int = Field(0, ge=0, description="Seed of the bootstrap: the decision is deterministic.")
    min_deflated_sharpe: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Least deflated Sharpe ratio (a probability) of the candidate's test sessions, given the "
        "candidates compared; None: reported, not judged.",
    )
    min_controller_health: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Least health score of the reward controller over the night's cycles "
        "(controllers.health); None: reported, not judged.",
    )

    @field_validator("scenario_criteria")
    @classmethod
    def _known_criteria(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for key, names in value.items():
            _check_key(key)
            unknown = [name for name in names if name not in CRITERION_METRICS]
            if unknown:
                msg = f"scenario {key!r} names unknown criteria {unknown}; known: {list(CRITERION_METRICS)}"
                raise ValueError(msg)
            if len(set(names)) != len(names):
                msg = f"scenario {key!r} lists a criterion twice: {list(names)}"
                raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "GateCriteria":
        if self.min_trades_per_day > self.max_trades_per_day:
            msg = (
                f"min_trades_per_day {self.min_trades_per_day} exceeds max_trades_per_day "
                f"{self.max_trades_per_day}"
            )
            raise ValueError(msg)
        for name in ("min_total_return_pct", "max_drawdown_pct", "min_sharpe", "champion_margin"):
            if not math.isfinite(getattr(self, name)):
                msg = f"{name} must be finite, got {getattr(self, name)}"
                raise ValueError(msg)
        _check_key(self.paired_scenario)
        if len(set(self.paired_baselines)) != len(self.paired_baselines):
            msg = f"paired_baselines lists a policy twice: {list(self.paired_baselines)}"
            raise ValueError(msg)
        for key in self.required_scenarios:
            if key not in self.scenario_criteria:
                msg = f"required scenario {key!r} has no entry in scenario_criteria"
                raise ValueError(msg)
        if self.champion_scenarios is not None:
            if not self.champion_scenarios:
                msg = "champion_scenarios is empty: name at least one scenario, or None for all gated ones"
                raise ValueError(msg)
            for key in self.champion_scenarios:
                _check_key(key)
        return self

    def threshold(self, criterion: str) -> str:
        """The criterion's threshold for display (``">= 1.0"``, ``"in [5.0, 25.0]"``)."""
        thresholds = {
            "total_return": f">= {self.min_total_return_pct}",
            "max_drawdown": f"<= {self.max_drawdown_pct}",
            "trades_per_day": f"in [{self.min_trades_per_day}, {self.max_trades_per_day}]",
            "sharpe": f">= {self.min_sharpe}",
            "win_rate": f">= {self.min_win_rate}",
        }
        return thresholds[criterion]

    def check(self, criterion: str, value: float) -> bool:
        """Whether a finite ``value`` meets ``criterion``."""
        if criterion == "total_return":
            return value >= self.min_total_return_pct
        if criterion == "max_drawdown":
            return 0.0 <= value <= self.max_drawdown_pct
        if criterion == "trades_per_day":
            return self.min_trades_per_day <= value <= self.max_trades_per_day
        if criterion == "sharpe":
            return value >= self.min_sharpe
        if criterion == "win_rate":
            return value >= self.min_win_rate
        msg = f"unknown criterion {criterion!r}"
        raise ValueError(msg)


def _check_key(key: str) -> None:
    kind, separator, name = key.partition("/")
    if not separator or not kind or not name or not set(kind + name) <= _KEY_CHARACTERS:
        msg = f"scenario key {key!r} must look like '<kind>/<scenario>' (letters, digits, '_' and '-')"
        raise ValueError(msg)
