"""The gate's paired evidence and the criteria judged on it.

:class:`GateEvidence` holds every policy's per-session returns on the same sessions; from it
:func:`paired_results` builds the ``beats_<name>_ci`` criteria (seeded block-bootstrap intervals of the
per-session return difference) and the ``deflated_sharpe`` criterion, and :func:`health_results` the
``controller_health`` criterion. The rules are stated in :mod:`validation.gate`, which combines these
results with the threshold and champion criteria.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from validation.gate_criteria import (
    CONTROLLER_HEALTH_CRITERION,
    CONTROLLER_HEALTH_SCENARIO,
    DEFLATED_SHARPE_CRITERION,
    PAIRED_COMPARATORS,
    GateCriteria,
)
from validation.gate_decision import CriterionResult
from validation.statistics import deflated_sharpe_ratio, paired_bootstrap_difference, sharpe_variance

__all__ = ["GateEvidence", "health_results", "paired_results"]


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


def paired_results(
    criteria: GateCriteria,
    evidence: GateEvidence | None,
    *,
    has_champion: bool,
    candidate_name: str,
) -> tuple[list[CriterionResult], dict[str, Any]]:
    """``beats_<name>_ci`` and ``deflated_sharpe`` results, and the statistics behind them.

    ``candidate_name`` names the judged policy in ``evidence``; the champion is judged only when
    ``has_champion``. Without evidence every configured criterion fails ("no paired session returns"). The
    statistics hold ``paired`` (comparator -> interval record) and ``scenario``, and given evidence
    ``candidates_compared`` and ``deflated_sharpe`` (the record, or its ``problem``).
    """
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


def health_results(
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
