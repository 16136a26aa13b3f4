"""The promotion gate: a pure decision on validation metrics, candidate against criteria and champion.

**Scenario keys** are ``"<kind>/<scenario>"``: ``kind`` is ``held_out`` (slices of the held-out validation
window) or ``stress`` (synthetic stress scenarios), ``scenario`` one of ``mixed`` (all episodes),
``high_volatility``, ``low_volatility``, ``trending``, ``correlation_breakdown``. The gate sees metrics as
``{scenario_key: {metric: value}}``, one flat dict of floats per scenario (``total_return_pct``,
``max_drawdown_pct``, ``trades_per_day``, ``sharpe``, ``win_rate``, ``episodes``, ...).

**Criteria** (:data:`~validation.gate_criteria.CRITERION_METRICS` names the metric each one reads;
thresholds in :class:`~validation.gate_criteria.GateCriteria`):

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

**Small samples.** A ratio criterion (:data:`~validation.gate_criteria.RATIO_CRITERIA`: ``sharpe``,
``win_rate``) on a scenario with fewer than ``min_ratio_episodes`` episodes is reported but not judged
(``evaluated=False``, with the count), so a 2-episode slice cannot pass or fail on a Sharpe of 16. On a
required scenario too few episodes fail.

**Paired statistics** (:class:`~validation.gate_evidence.GateEvidence`, the per-session returns of every
policy on ``paired_scenario``, the test window's ``held_out/mixed`` by default, same sessions in the same
order):

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

This module holds :func:`decide` and the threshold and champion rules; the vocabulary and
:class:`GateCriteria` are in :mod:`validation.gate_criteria`, the records in :mod:`validation.gate_decision`,
the paired criteria in :mod:`validation.gate_evidence`, and the markdown report in
:mod:`validation.gate_report`.
"""

import math
from collections.abc import Mapping

from validation.gate_criteria import (
    CANDIDATE,
    CHAMPION_CRITERION,
    CRITERION_METRICS,
    NO_CHAMPION_SCENARIO,
    RATIO_CRITERIA,
    GateCriteria,
)
from validation.gate_decision import CriterionResult, GateDecision
from validation.gate_evidence import GateEvidence, health_results, paired_results

__all__ = ["decide"]


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
    paired, statistics = paired_results(
        criteria, evidence, has_champion=champion is not None, candidate_name=candidate_name
    )
    results.extend(paired)
    results.extend(health_results(criteria, evidence, statistics))
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
