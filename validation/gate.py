"""The promotion gate: a pure decision on validation metrics, candidate against criteria and champion.

**Scenario keys** are ``"<kind>/<scenario>"``: ``kind`` is ``held_out`` (slices of the held-out validation
window) or ``stress`` (synthetic stress scenarios), ``scenario`` one of ``mixed`` (all episodes),
``high_volatility``, ``low_volatility``, ``trending``, ``correlation_breakdown``. The gate sees metrics as
``{scenario_key: {metric: value}}``, one flat dict of floats per scenario (``total_return_pct``,
``max_drawdown_pct``, ``trades_per_day``, ``sharpe``, ``win_rate``, ``episodes``, ...).

**Criteria** (:data:`CRITERION_METRICS` names the metric each one reads; thresholds in :class:`GateCriteria`):

* ``total_return``: ``total_return_pct >= min_total_return_pct`` (default 1.0, percent);
* ``max_drawdown``: ``max_drawdown_pct <= max_drawdown_pct`` (default 2.0; a drawdown is a non-negative
  magnitude in percent, so a negative value fails as malformed);
* ``trades_per_day``: ``min_trades_per_day <= trades_per_day <= max_trades_per_day`` (default [5, 25]);
* ``sharpe``: ``sharpe >= min_sharpe`` (default 0.6);
* ``win_rate``: ``win_rate >= min_win_rate`` (default 0.65, a share in [0, 1]).

``GateCriteria.scenario_criteria`` says which criteria apply to which scenario; by default all five on
``held_out/mixed`` and ``stress/mixed``, ``max_drawdown`` and ``trades_per_day`` on every other scenario of
both kinds. A missing or NaN metric fails its criterion, with the reason.

**Empty scenarios.** A scenario whose metrics are absent, empty, or report ``episodes == 0`` is *not
evaluated*: each of its criteria is listed with ``evaluated=False``, ``passed=False`` and the reason, and the
overall reason counts them, so nothing passes silently. Such a scenario does not fail the gate unless it is
one of ``required_scenarios`` (default both ``mixed`` scenarios), which must have episodes.

**Champion.** The candidate must beat the champion, evaluated by the caller in the same run on the same
scenarios and seeds: on each of ``champion_scenarios`` (default ``("held_out/mixed",)``, the primary
scenario; ``None`` compares on every gated scenario where both have episodes), the criterion
``beats_champion`` passes when ``candidate > champion + champion_margin`` for ``champion_metric`` (default
``total_return_pct``, margin 0.0, in the metric's own units) with ``champion_direction="higher"``, or
``candidate < champion - champion_margin`` with ``"lower"``. The comparison is strict: a tie does not beat
the champion, so a copy of the champion is never promoted. No champion: one ``beats_champion`` result on
scenario ``"all"`` that passes with the reason ``"no champion"``. A champion without metrics on a compared
scenario, or with a NaN value there, fails the criterion (the caller must re-evaluate it).

**Incomparable champion (fails closed).** ``decide(..., champion_problem=...)`` says that a champion exists
but cannot be evaluated on tonight's observations (a feature change, a missing or unverifiable checkpoint).
Then ``beats_champion`` fails with that problem and how to proceed, unless
``replace_incomparable_champion`` is set, in which case it passes with a reason that says loudly that an
incomparable champion is being replaced (the version and the report carry it).

**Small samples.** A ratio criterion (:data:`RATIO_CRITERIA`: ``sharpe``, ``win_rate``) on a scenario with
fewer than ``min_ratio_episodes`` episodes is reported but not judged (``evaluated=False``, with the count),
so a 2-episode slice cannot pass or fail on a Sharpe of 16. On a required scenario too few episodes fail.

**Paired statistics** (:class:`GateEvidence`, the per-session returns of every policy on
``paired_scenario``, the test window's ``held_out/mixed`` by default, same sessions in the same order):

* ``beats_<name>_ci`` for each name in ``paired_baselines`` (default champion, flat, buy-and-hold; the
  champion only when there is one): the block bootstrap (by session, seeded) interval of the mean
  per-session return difference candidate - other, in percent; passes when its lower bound exceeds
  ``paired_margin_pct``. Deterministic: same inputs, same decision.
* ``deflated_sharpe``: the deflated Sharpe ratio (Bailey and Lopez de Prado) of the candidate's per-session
  returns, given ``GateEvidence.candidates_compared`` candidates (tonight's cycles; tuning trials later)
  whose selection-window Sharpe ratios vary as ``trial_sharpes``. Always reported in
  ``GateDecision.statistics``; a criterion when ``min_deflated_sharpe`` is set.
* ``controller_health`` (scenario ``training``): the reward controller's health score over the night's
  cycles (``GateEvidence.controller_health``, :mod:`controllers.health`), at least
  ``min_controller_health``; a criterion only when that is set (the figures are reported either way), and
  failed when no health was measured.

Without evidence, every configured paired criterion fails ("no paired session returns"): a caller cannot
skip the statistics by omission.

The gate passes when every evaluated criterion passes and every required scenario was evaluated.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from validation.statistics import deflated_sharpe_ratio, paired_bootstrap_difference, sharpe_variance

__all__ = [
    "BASELINE_NAMES",
    "CHAMPION_CRITERION",
    "CRITERION_METRICS",
    "NO_CHAMPION_SCENARIO",
    "PAIRED_COMPARATORS",
    "RATIO_CRITERIA",
    "SCENARIO_KINDS",
    "SCENARIO_NAMES",
    "CriterionResult",
    "GateCriteria",
    "GateDecision",
    "GateEvidence",
    "decide",
    "default_scenario_criteria",
    "gate_report",
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


@dataclass(frozen=True)
class CriterionResult:
    """One criterion on one scenario: the measured value, the threshold, and whether it passed and why.

    ``evaluated`` is False when the scenario had no episodes; such a result has ``passed=False`` and does not
    fail the gate by itself (see the module docstring).
    """

    scenario: str
    criterion: str
    metric: str
    value: float | None
    threshold: str
    passed: bool
    reason: str
    evaluated: bool = True


@dataclass(frozen=True)
class GateEvidence:
    """What the paired statistics read: per-session returns of each policy on the same sessions.

    ``session_returns`` maps a policy (``"candidate"`` and any of :data:`PAIRED_COMPARATORS`) to its return
    (a fraction) in each session of ``GateCriteria.paired_scenario``, in the same session order for all.
    ``candidates_compared`` is how many candidates were compared to pick this one (the kept cycles tonight,
    later tuning trials too); ``trial_sharpes`` their per-session Sharpe ratios on the selection window.
    """

    session_returns: Mapping[str, Sequence[float]]
    candidates_compared: int = 1
    trial_sharpes: tuple[float, ...] = ()
    controller_health: Mapping[str, float] | None = None
    """The night's controller health figures (``score`` and its components), when the candidate was trained."""

    def __post_init__(self) -> None:
        if self.candidates_compared < 1:
            msg = f"candidates_compared must be >= 1, got {self.candidates_compared}"
            raise ValueError(msg)
        lengths = {name: len(values) for name, values in self.session_returns.items()}
        if len(set(lengths.values())) > 1:
            msg = f"paired session returns must cover the same sessions, got lengths {lengths}"
            raise ValueError(msg)


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict, its one-line reason, every criterion result, and the statistics behind them.

    ``statistics``: ``paired`` (comparator -> bootstrap interval of the per-session return difference, in
    percent, with the session count), ``deflated_sharpe`` (the deflated Sharpe ratio record),
    ``candidates_compared``, and ``champion`` (``"none"``, ``"comparable"``, ``"incomparable"`` or
    ``"incomparable, replaced"``).
    """

    passed: bool
    reason: str
    results: tuple[CriterionResult, ...]
    statistics: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable view (NaN values become None)."""
        return {
            "passed": self.passed,
            "reason": self.reason,
            "results": [{**asdict(result), "value": _json_float(result.value)} for result in self.results],
            "statistics": _json_ready(self.statistics),
        }

    def failures(self) -> tuple[CriterionResult, ...]:
        """The evaluated criteria that failed."""
        return tuple(result for result in self.results if result.evaluated and not result.passed)

    def metric_tags(self) -> dict[str, str]:
        """Flat ``gate.<scenario>.<criterion>`` -> measured value (``repr`` of the float), for registry tags.

        A value is ``"nan"`` when NaN, ``"missing"`` when absent, ``"not evaluated"`` for an empty
        scenario; ``beats_champion`` without a champion is ``"no champion"``.
        """
        tags = {}
        for result in self.results:
            if not result.evaluated:
                text = "not evaluated"
            elif result.value is None:
                text = "no champion" if result.scenario == NO_CHAMPION_SCENARIO else "missing"
            elif math.isnan(result.value):
                text = "nan"
            else:
                text = repr(float(result.value))
            tags[f"gate.{result.scenario}.{result.criterion}"] = text
        champion = self.statistics.get("champion")
        if champion is not None:
            tags["gate.champion"] = str(champion)
        deflated = self.statistics.get("deflated_sharpe") or {}
        if "probability" in deflated:
            tags["gate.deflated_sharpe"] = repr(float(deflated["probability"]))
            tags["gate.candidates_compared"] = str(deflated["n_trials"])
        return tags


def _json_float(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _json_ready(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    if isinstance(value, float):
        return _json_float(value)
    return value


def _episodes(metrics: Mapping[str, float] | None, *, episodes_metric: str) -> str | None:
    """None when the scenario has episodes, else why it counts as empty."""
    if metrics is None:
        return "no metrics for this scenario"
    if not metrics:
        return "the scenario's metrics are empty"
    count = metrics.get(episodes_metric)
    if count is not None and math.isfinite(float(count)) and float(count) <= 0.0:
        return f"the scenario has no episodes ({episodes_metric} = {count})"
    return None


def _count(metrics: Mapping[str, float], name: str) -> int | None:
    raw = metrics.get(name)
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return int(value) if math.isfinite(value) else None


def _metric(metrics: Mapping[str, float], name: str) -> tuple[float | None, str | None]:
    """The metric as a float and None, or the value (None or NaN) and why it cannot be judged."""
    if name not in metrics:
        return None, f"metric {name!r} is missing"
    raw = metrics[name]
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None, f"metric {name!r} is not a number: {raw!r}"
    if math.isnan(value):
        return value, f"metric {name!r} is NaN"
    return value, None


def _criterion(
    scenario: str, criterion: str, metrics: Mapping[str, float], criteria: GateCriteria
) -> CriterionResult:
    metric = CRITERION_METRICS[criterion]
    threshold = criteria.threshold(criterion)
    value, problem = _metric(metrics, metric)
    episodes = _count(metrics, criteria.episodes_metric)
    if criterion in RATIO_CRITERIA and episodes is not None and episodes < criteria.min_ratio_episodes:
        shown = "?" if value is None or math.isnan(value) else f"{value:.6g}"
        reason = (
            f"{metric} = {shown} over only {episodes} episodes (< min_ratio_episodes "
            f"{criteria.min_ratio_episodes})"
        )
        if scenario in criteria.required_scenarios:
            reason += ": too few for a required scenario"
            return CriterionResult(scenario, criterion, metric, value, threshold, False, reason)
        return CriterionResult(
            scenario, criterion, metric, value, threshold, False, reason + ": reported, not judged", False
        )
    if problem is not None or value is None:
        return CriterionResult(scenario, criterion, metric, value, threshold, False, problem or "missing")
    if criterion == "max_drawdown" and value < 0.0:
        reason = f"{metric} = {value:.6g} is negative; a drawdown must be a non-negative magnitude"
        return CriterionResult(scenario, criterion, metric, value, threshold, False, reason)
    passed = criteria.check(criterion, value)
    verb = "meets" if passed else "fails"
    reason = f"{metric} = {value:.6g} {verb} {threshold}"
    return CriterionResult(scenario, criterion, metric, value, threshold, passed, reason)


def _champion_results(
    candidate: Mapping[str, Mapping[str, float]],
    champion: Mapping[str, Mapping[str, float]] | None,
    criteria: GateCriteria,
    champion_problem: str | None = None,
) -> list[CriterionResult]:
    metric = criteria.champion_metric
    margin = criteria.champion_margin
    higher = criteria.champion_direction == "higher"
    sign = "+" if higher else "-"
    if champion is None and champion_problem is not None:
        threshold = "a champion comparable on tonight's observations"
        if criteria.replace_incomparable_champion:
            reason = f"INCOMPARABLE CHAMPION REPLACED (gate.replace_incomparable_champion is true): {champion_problem}"
            passed = True
        else:
            reason = (
                f"the champion cannot be evaluated on tonight's observations: {champion_problem}; the night "
                "does not promote. To replace it anyway, set gate.replace_incomparable_champion: true for one "
                "night (the new version is tagged as having replaced an incomparable champion)"
            )
            passed = False
        return [
            CriterionResult(NO_CHAMPION_SCENARIO, CHAMPION_CRITERION, metric, None, threshold, passed, reason)
        ]
    if champion is None:
        threshold = f"{'>' if higher else '<'} champion {sign} {margin}"
        return [
            CriterionResult(
                NO_CHAMPION_SCENARIO, CHAMPION_CRITERION, metric, None, threshold, True, "no champion"
            )
        ]
    episodes_metric = criteria.episodes_metric
    if criteria.champion_scenarios is None:
        scenarios = [
            key
            for key in criteria.scenario_criteria
            if _episodes(candidate.get(key), episodes_metric=episodes_metric) is None
            and _episodes(champion.get(key), episodes_metric=episodes_metric) is None
        ]
        if not scenarios:
            reason = "the champion and the candidate share no gated scenario with episodes"
            threshold = f"{'>' if higher else '<'} champion {sign} {margin}"
            return [
                CriterionResult(
                    NO_CHAMPION_SCENARIO, CHAMPION_CRITERION, metric, None, threshold, False, reason
                )
            ]
    else:
        scenarios = list(criteria.champion_scenarios)
    results = []
    for key in scenarios:
        champion_metrics = champion.get(key)
        candidate_metrics = candidate.get(key)
        empty_champion = _episodes(champion_metrics, episodes_metric=episodes_metric)
        empty_candidate = _episodes(candidate_metrics, episodes_metric=episodes_metric)
        reference, reference_problem = (
            _metric(champion_metrics, metric) if champion_metrics else (None, "missing")
        )
        shown = "?" if reference is None or math.isnan(reference) else f"{reference:.6g}"
        threshold = f"{'>' if higher else '<'} champion {shown} {sign} {margin}"
        value, problem = _metric(candidate_metrics, metric) if candidate_metrics else (None, "missing")
        if empty_candidate is not None:
            reason = f"candidate: {empty_candidate}"
        elif empty_champion is not None:
            reason = f"champion: {empty_champion} (re-evaluate the champion on the same scenarios)"
        elif problem is not None:
            reason = f"candidate: {problem}"
        elif reference_problem is not None:
            reason = f"champion: {reference_problem}"
        else:
            reason = ""
        if reason or value is None or reference is None:
            results.append(CriterionResult(key, CHAMPION_CRITERION, metric, value, threshold, False, reason))
            continue
        passed = value > reference + margin if higher else value < reference - margin
        verb = "beats" if passed else "does not beat"
        reason = f"{metric} = {value:.6g} {verb} the champion's {reference:.6g} by more than {margin}"
        if not passed and value == reference:
            reason += " (a tie does not beat the champion)"
        results.append(CriterionResult(key, CHAMPION_CRITERION, metric, value, threshold, passed, reason))
    return results


def _paired_results(
    criteria: GateCriteria,
    evidence: GateEvidence | None,
    *,
    has_champion: bool,
    candidate_name: str,
) -> tuple[list[CriterionResult], dict[str, Any]]:
    """``beats_<name>_ci`` and ``deflated_sharpe`` results, and the statistics behind them."""
    scenario = criteria.paired_scenario
    margin = criteria.paired_margin_pct
    threshold = f"{criteria.paired_confidence:.0%} interval lower bound > {margin}"
    judged = [name for name in criteria.paired_baselines if name != "champion" or has_champion]
    results: list[CriterionResult] = []
    statistics: dict[str, Any] = {"paired": {}, "scenario": scenario}
    returns = None if evidence is None else evidence.session_returns.get(candidate_name)
    if evidence is None or returns is None:
        reason = f"no paired session returns of the {candidate_name} on {scenario}"
        results = [
            CriterionResult(
                scenario, f"beats_{name}_ci", "session_return_diff_pct", None, threshold, False, reason
            )
            for name in judged
        ]
        if criteria.min_deflated_sharpe is not None:
            results.append(
                CriterionResult(
                    scenario,
                    DEFLATED_SHARPE_CRITERION,
                    "deflated_sharpe",
                    None,
                    f">= {criteria.min_deflated_sharpe}",
                    False,
                    reason,
                )
            )
        return results, statistics
    statistics["candidates_compared"] = evidence.candidates_compared
    candidate_returns = np.asarray(returns, dtype=np.float64)
    for name in PAIRED_COMPARATORS:
        if name == candidate_name:
            continue
        other = evidence.session_returns.get(name)
        problem: str | None = None
        interval = None
        if other is None:
            problem = f"no session returns of {name}"
        else:
            try:
                interval = paired_bootstrap_difference(
                    100.0 * candidate_returns,
                    100.0 * np.asarray(other, dtype=np.float64),
                    confidence=criteria.paired_confidence,
                    resamples=criteria.bootstrap_resamples,
                    block_sessions=min(criteria.bootstrap_block_sessions, max(1, len(candidate_returns))),
                    seed=criteria.bootstrap_seed,
                )
            except ValueError as error:
                problem = str(error)
        if interval is not None:
            statistics["paired"][name] = interval.to_dict()
        if name not in judged:
            continue
        criterion = f"beats_{name}_ci"
        if interval is None:
            results.append(
                CriterionResult(
                    scenario, criterion, "session_return_diff_pct", None, threshold, False, problem or ""
                )
            )
            continue
        passed = interval.lower > margin
        reason = (
            f"mean session return difference vs {name} {interval.estimate:+.4g}% "
            f"[{interval.lower:+.4g}%, {interval.upper:+.4g}%] over {interval.sessions} sessions; lower bound "
            f"{'exceeds' if passed else 'does not exceed'} {margin}"
        )
        results.append(
            CriterionResult(
                scenario, criterion, "session_return_diff_pct", interval.lower, threshold, passed, reason
            )
        )
    finite = [value for value in evidence.trial_sharpes if math.isfinite(value)]
    variance = sharpe_variance(finite) if len(finite) > 1 else 0.0
    deflated = None
    try:
        deflated = deflated_sharpe_ratio(
            candidate_returns, n_trials=evidence.candidates_compared, trial_sharpe_variance=variance
        )
        statistics["deflated_sharpe"] = deflated.to_dict()
    except ValueError as error:
        statistics["deflated_sharpe"] = {"problem": str(error)}
    if criteria.min_deflated_sharpe is not None:
        threshold = f">= {criteria.min_deflated_sharpe}"
        if deflated is None:
            reason = f"deflated Sharpe ratio unavailable: {statistics['deflated_sharpe']['problem']}"
            results.append(
                CriterionResult(
                    scenario, DEFLATED_SHARPE_CRITERION, "deflated_sharpe", None, threshold, False, reason
                )
            )
        else:
            passed = deflated.probability >= criteria.min_deflated_sharpe
            reason = (
                f"deflated Sharpe {deflated.probability:.3f} (session Sharpe {deflated.sharpe:.3g} against "
                f"{deflated.benchmark_sharpe:.3g} expected from the best of {deflated.n_trials}) "
                f"{'meets' if passed else 'fails'} {threshold}"
            )
            results.append(
                CriterionResult(
                    scenario,
                    DEFLATED_SHARPE_CRITERION,
                    "deflated_sharpe",
                    deflated.probability,
                    threshold,
                    passed,
                    reason,
                )
            )
    return results, statistics


def _health_results(
    criteria: GateCriteria, evidence: GateEvidence | None, statistics: dict[str, Any]
) -> list[CriterionResult]:
    """The ``controller_health`` criterion (when ``min_controller_health`` is set); records the figures."""
    health = None if evidence is None else evidence.controller_health
    if health is not None:
        statistics["controller_health"] = dict(health)
    minimum = criteria.min_controller_health
    if minimum is None:
        return []
    threshold = f">= {minimum}"
    score = None if health is None else health.get("score")
    if score is None or not math.isfinite(score):
        reason = "no controller health was measured for this candidate"
        passed = False
        score = None
    else:
        passed = score >= minimum
        reason = f"controller health {score:.3f} {'meets' if passed else 'fails'} {threshold}"
    return [
        CriterionResult(
            CONTROLLER_HEALTH_SCENARIO, CONTROLLER_HEALTH_CRITERION, "health_score", score, threshold, passed, reason
        )
    ]


def decide(
    candidate: Mapping[str, Mapping[str, float]],
    champion: Mapping[str, Mapping[str, float]] | None,
    criteria: GateCriteria,
    evidence: GateEvidence | None = None,
    *,
    champion_problem: str | None = None,
    candidate_name: str = CANDIDATE,
) -> GateDecision:
    """Judge the candidate's per-scenario metrics against ``criteria`` and the champion's metrics.

    ``candidate`` and ``champion`` map scenario keys (``"held_out/mixed"``) to flat metric dicts; ``champion``
    is None when there is no champion, or when there is one that cannot be evaluated: then
    ``champion_problem`` says why and the gate fails closed. ``evidence`` holds the paired per-session
    returns (``candidate_name`` names the judged policy in it, so a baseline can be judged by the same
    rules). Pure and deterministic: no I/O, seeded bootstrap. See the module docstring for every rule.
    """
    results: list[CriterionResult] = []
    missing_required: list[str] = []
    skipped_scenarios: list[str] = []
    for key, names in criteria.scenario_criteria.items():
        metrics = candidate.get(key)
        empty = _episodes(metrics, episodes_metric=criteria.episodes_metric)
        if metrics is None or empty is not None:
            required = key in criteria.required_scenarios
            if required:
                missing_required.append(key)
            else:
                skipped_scenarios.append(key)
            reason = f"not evaluated: {empty or 'no metrics'}" + (
                "; this scenario is required" if required else ""
            )
            for name in names:
                results.append(
                    CriterionResult(
                        key,
                        name,
                        CRITERION_METRICS[name],
                        None,
                        criteria.threshold(name),
                        False,
                        reason,
                        evaluated=False,
                    )
                )
            continue
        results.extend(_criterion(key, name, metrics, criteria) for name in names)
    results.extend(_champion_results(candidate, champion, criteria, champion_problem))
    paired, statistics = _paired_results(
        criteria, evidence, has_champion=champion is not None, candidate_name=candidate_name
    )
    results.extend(paired)
    results.extend(_health_results(criteria, evidence, statistics))
    if champion is not None:
        statistics["champion"] = "comparable"
    elif champion_problem is not None:
        statistics["champion"] = (
            "incomparable, replaced" if criteria.replace_incomparable_champion else "incomparable"
        )
    else:
        statistics["champion"] = "none"

    failed = [result for result in results if result.evaluated and not result.passed]
    passed = not failed and not missing_required
    parts = []
    if missing_required:
        parts.append(f"required scenarios without episodes: {missing_required}")
    if failed:
        shown = "; ".join(f"{result.scenario} {result.criterion}: {result.reason}" for result in failed[:5])
        more = f" (+{len(failed) - 5} more)" if len(failed) > 5 else ""
        parts.append(f"{len(failed)} criteria failed: {shown}{more}")
    evaluated = sum(result.evaluated for result in results)
    if passed:
        parts.append(f"all {evaluated} evaluated criteria passed")
    if skipped_scenarios:
        parts.append(f"not evaluated (no episodes): {skipped_scenarios}")
    return GateDecision(passed=passed, reason="; ".join(parts), results=tuple(results), statistics=statistics)


def _cell(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "NaN"
    return f"{value:.4g}"


def _lookup(metrics: Mapping[str, Mapping[str, float]] | None, scenario: str, metric: str) -> float | None:
    if metrics is None or scenario not in metrics:
        return None
    value = metrics[scenario].get(metric)
    return None if value is None else float(value)


def _statistics_lines(decision: GateDecision, names: Sequence[str]) -> list[str]:
    statistics = decision.statistics
    lines: list[str] = []
    champion = statistics.get("champion")
    if champion == "incomparable, replaced":
        lines += [
            "",
            "> **WARNING: an incomparable champion was replaced** (gate.replace_incomparable_champion).",
            "",
        ]
    elif champion == "incomparable":
        lines += [
            "",
            "> **The champion could not be evaluated on tonight's observations: no promotion.**",
            "",
        ]
    paired = statistics.get("paired") or {}
    if paired:
        judged = {result.criterion: result for result in decision.results if result.criterion.endswith("_ci")}
        lines += [
            "",
            f"## Paired sessions ({statistics.get('scenario', '')}): candidate minus each policy, per session",
            "",
            "| versus | mean difference % | interval % | sessions | judged |",
            "|---|---|---|---|---|",
        ]
        for name, interval in paired.items():
            result = judged.get(f"beats_{name}_ci")
            verdict = "-" if result is None else ("pass" if result.passed else "**fail**")
            confidence = interval.get("confidence", 0.0)
            lines.append(
                f"| {name} | {_cell(interval['estimate'])} | {confidence:.0%}: [{_cell(interval['lower'])}, "
                f"{_cell(interval['upper'])}] | {interval['sessions']} | {verdict} |"
            )
        rule = paired.get("signal_rule")
        if rule is not None:
            if rule["lower"] > 0.0:
                verdict = "the agent beats the signal rule with confidence: RL added something"
            elif rule["upper"] < 0.0:
                verdict = "the signal rule beats the agent with confidence: RL made it worse"
            else:
                verdict = "no measurable difference between the agent and the signal rule"
            lines += ["", f"**Agent vs signal rule:** {verdict}."]
    deflated = statistics.get("deflated_sharpe")
    if deflated:
        if "problem" in deflated:
            lines += ["", f"**Deflated Sharpe ratio:** unavailable ({deflated['problem']})."]
        else:
            lines += [
                "",
                f"**Deflated Sharpe ratio:** {_cell(deflated['probability'])} (per-session Sharpe "
                f"{_cell(deflated['sharpe'])} over {deflated['observations']} sessions, against "
                f"{_cell(deflated['benchmark_sharpe'])}, the best expected of {deflated['n_trials']} candidates "
                "compared).",
            ]
    health = statistics.get("controller_health")
    if health:
        lines += [
            "",
            (
                f"**Reward controller health:** {_cell(health.get('score'))} (greedy trades/day error on the "
                f"selection window {_cell(health.get('selection_trades_error'))} of target, on training "
                f"sessions {_cell(health.get('trades_error'))}; saturated {_cell(health.get('saturation_share'))} "
                f"of {_cell(health.get('rollouts'))} rollouts; oscillation {_cell(health.get('oscillation'))}; "
                f"behaviour follows target {_cell(health.get('behaviour_follows_target'))})."
            ),
        ]
    return lines


def gate_report(
    decision: GateDecision,
    *,
    candidate: Mapping[str, Mapping[str, float]],
    champion: Mapping[str, Mapping[str, float]] | None,
    baselines: Mapping[str, Mapping[str, Mapping[str, float]]],
    links: Mapping[str, str],
    windows: Mapping[str, str | int] | None = None,
) -> str:
    """A markdown report: verdict and reason, one row per criterion with candidate, champion and baselines.

    ``baselines`` maps a baseline name (``flat``, ``buy_and_hold``, ``signal_rule``) to its per-scenario
    metrics; ``links`` maps a label ("MLflow run", "model version") to a URL; ``windows`` the bounds of the
    training, selection and test windows (:meth:`validation.windows.WindowPlan.as_dict`). Every row shows
    the scenario's episode count ``n`` beside its figures; the paired intervals, the deflated Sharpe ratio
    and the agent-vs-signal-rule verdict follow the table.
    """
    verdict = "PASSED" if decision.passed else "REJECTED"
    names = [name for name in BASELINE_NAMES if name in baselines] + sorted(
        name for name in baselines if name not in BASELINE_NAMES
    )
    lines = [f"# Promotion gate: {verdict}", "", f"**Reason:** {decision.reason}", ""]
    if links:
        lines += [f"- {label}: [{url}]({url})" for label, url in links.items()]
        lines.append("")
    if windows:
        lines.append(
            "**Windows:** "
            + "; ".join(
                f"{name} {windows.get(f'{name}_start', '?')} .. {windows.get(f'{name}_end', '?')}"
                for name in ("train", "selection", "test")
            )
            + f" (purge gaps of {windows.get('purge_bars', '?')} bars). The selection window picked the "
            "candidate; the test window (`held_out/*`) judged it."
        )
        lines.append("")
    header = ["scenario", "n", "criterion", "metric", "threshold", "candidate", "champion", *names, "result"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for result in decision.results:
        if not result.evaluated:
            outcome = "not evaluated"
        else:
            outcome = "pass" if result.passed else "**fail**"
        scenario = result.scenario
        episodes = _lookup(candidate, scenario, "episodes")
        row = [
            scenario,
            "-" if episodes is None else f"{episodes:.0f}",
            result.criterion,
            result.metric,
            result.threshold.replace("|", "\\|"),
            _cell(
                result.value
                if result.criterion.endswith("_ci")
                or result.criterion in (DEFLATED_SHARPE_CRITERION, CONTROLLER_HEALTH_CRITERION)
                else _lookup(candidate, scenario, result.metric)
            ),
            _cell(_lookup(champion, scenario, result.metric)),
            *(_cell(_lookup(baselines[name], scenario, result.metric)) for name in names),
            outcome,
        ]
        lines.append("| " + " | ".join(row) + " |")
    lines += _statistics_lines(decision, names)
    reasons = [result for result in decision.results if not result.passed]
    if reasons:
        lines += ["", "## Why", ""]
        lines += [f"- `{result.scenario}` {result.criterion}: {result.reason}" for result in reasons]
    return "\n".join(lines) + "\n"
