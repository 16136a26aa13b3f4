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

The gate passes when every evaluated criterion passes and every required scenario was evaluated.
"""

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "BASELINE_NAMES",
    "CHAMPION_CRITERION",
    "CRITERION_METRICS",
    "NO_CHAMPION_SCENARIO",
    "SCENARIO_KINDS",
    "SCENARIO_NAMES",
    "CriterionResult",
    "GateCriteria",
    "GateDecision",
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
        for field in ("min_total_return_pct", "max_drawdown_pct", "min_sharpe", "champion_margin"):
            if not math.isfinite(getattr(self, field)):
                msg = f"{field} must be finite, got {getattr(self, field)}"
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
class GateDecision:
    """The gate's verdict, its one-line reason, and every criterion result."""

    passed: bool
    reason: str
    results: tuple[CriterionResult, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable view (NaN values become None)."""
        return {
            "passed": self.passed,
            "reason": self.reason,
            "results": [{**asdict(result), "value": _json_float(result.value)} for result in self.results],
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
        return tags


def _json_float(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


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
) -> list[CriterionResult]:
    metric = criteria.champion_metric
    margin = criteria.champion_margin
    higher = criteria.champion_direction == "higher"
    sign = "+" if higher else "-"
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


def decide(
    candidate: Mapping[str, Mapping[str, float]],
    champion: Mapping[str, Mapping[str, float]] | None,
    criteria: GateCriteria,
) -> GateDecision:
    """Judge the candidate's per-scenario metrics against ``criteria`` and the champion's metrics.

    ``candidate`` and ``champion`` map scenario keys (``"held_out/mixed"``) to flat metric dicts; ``champion``
    is None when there is no champion. Pure: no I/O. See the module docstring for every rule.
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
    results.extend(_champion_results(candidate, champion, criteria))

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
    return GateDecision(passed=passed, reason="; ".join(parts), results=tuple(results))


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


def gate_report(
    decision: GateDecision,
    *,
    candidate: Mapping[str, Mapping[str, float]],
    champion: Mapping[str, Mapping[str, float]] | None,
    baselines: Mapping[str, Mapping[str, Mapping[str, float]]],
    links: Mapping[str, str],
) -> str:
    """A markdown report: verdict and reason, one row per criterion with candidate, champion and baselines.

    ``baselines`` maps a baseline name (``flat``, ``buy_and_hold``, ``signal_rule``) to its per-scenario
    metrics; ``links`` maps a label ("MLflow run", "model version") to a URL.
    """
    verdict = "PASSED" if decision.passed else "REJECTED"
    names = [name for name in BASELINE_NAMES if name in baselines] + sorted(
        name for name in baselines if name not in BASELINE_NAMES
    )
    lines = [f"# Promotion gate: {verdict}", "", f"**Reason:** {decision.reason}", ""]
    if links:
        lines += [f"- {label}: [{url}]({url})" for label, url in links.items()]
        lines.append("")
    header = ["scenario", "criterion", "metric", "threshold", "candidate", "champion", *names, "result"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for result in decision.results:
        if not result.evaluated:
            outcome = "not evaluated"
        else:
            outcome = "pass" if result.passed else "**fail**"
        scenario = result.scenario
        row = [
            scenario,
            result.criterion,
            result.metric,
            result.threshold.replace("|", "\\|"),
            _cell(_lookup(candidate, scenario, result.metric)),
            _cell(_lookup(champion, scenario, result.metric)),
            *(_cell(_lookup(baselines[name], scenario, result.metric)) for name in names),
            outcome,
        ]
        lines.append("| " + " | ".join(row) + " |")
    reasons = [result for result in decision.results if not result.passed]
    if reasons:
        lines += ["", "## Why", ""]
        lines += [f"- `{result.scenario}` {result.criterion}: {result.reason}" for result in reasons]
    return "\n".join(lines) + "\n"
