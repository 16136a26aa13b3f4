"""Metrics, criteria and evidence shared by the gate and QC tests."""

from pathlib import Path

from validation.gate_criteria import GateCriteria
from validation.gate_decision import CriterionResult, GateDecision
from validation.gate_evidence import GateEvidence

CRITERIA = GateCriteria(paired_baselines=())


GOOD = {
    "total_return_pct": 1.5,
    "max_drawdown_pct": 1.0,
    "trades_per_day": 10.0,
    "sharpe": 1.2,
    "win_rate": 0.7,
    "episodes": 10.0,
}


def everywhere(**changes: float) -> dict[str, dict[str, float]]:
    """Good metrics on every default scenario, with ``changes`` applied to all of them."""
    return {key: {**GOOD, **changes} for key in CRITERIA.scenario_criteria}


def result(decision: GateDecision, scenario: str, criterion: str) -> CriterionResult:
    matches = [item for item in decision.results if (item.scenario, item.criterion) == (scenario, criterion)]
    assert len(matches) == 1, matches
    return matches[0]


SESSIONS = 12


def returns(mean: float, spread: float = 0.002, seed: int = 0) -> list[float]:
    generator = __import__("numpy").random.default_rng(seed)
    return list(mean + spread * generator.standard_normal(SESSIONS))


def evidence_for(candidate: list[float], **others: list[float]) -> GateEvidence:
    base = {
        "flat": [0.0] * SESSIONS,
        "buy_and_hold": returns(0.0, seed=9),
        "signal_rule": returns(0.001, seed=8),
    }
    return GateEvidence(
        session_returns={"candidate": candidate, **base, **others},
        candidates_compared=3,
        trial_sharpes=(0.5, 0.9, 1.4),
    )


REPO_ROOT = Path(__file__).resolve().parents[2]
