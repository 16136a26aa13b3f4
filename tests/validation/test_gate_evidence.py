import dataclasses
import json

import pytest

from tests.validation.support import SESSIONS, everywhere, evidence_for, result, returns
from validation.gate import decide
from validation.gate_criteria import GateCriteria
from validation.gate_evidence import GateEvidence
from validation.gate_report import gate_report


def test_a_clear_per_session_edge_beats_every_baseline_with_confidence() -> None:
    decision = decide(everywhere(), None, GateCriteria(), evidence_for(returns(0.01)))
    assert decision.passed, decision.reason
    for name in ("flat", "buy_and_hold"):
        beat = result(decision, "held_out/mixed", f"beats_{name}_ci")
        assert beat.passed and beat.value is not None and beat.value > 0.0
    paired = decision.statistics["paired"]
    assert set(paired) == {"flat", "buy_and_hold", "signal_rule"}
    assert paired["flat"]["sessions"] == SESSIONS
    assert paired["flat"]["lower"] < paired["flat"]["estimate"] < paired["flat"]["upper"]
    assert decision.statistics["deflated_sharpe"]["n_trials"] == 3


def test_good_averages_without_confidence_do_not_pass() -> None:
    # positive on average but as noisy as the edge is small: the interval's lower bound is below zero
    noisy = returns(0.0005, spread=0.02, seed=3)
    decision = decide(everywhere(), None, GateCriteria(), evidence_for(noisy))
    assert not decision.passed
    assert not result(decision, "held_out/mixed", "beats_flat_ci").passed


def test_the_champion_is_beaten_on_paired_sessions_when_there_is_one() -> None:
    champion_returns = returns(0.0099, seed=1)
    evidence = evidence_for(returns(0.01), champion=champion_returns)
    decision = decide(everywhere(), everywhere(total_return_pct=1.0), GateCriteria(), evidence)
    assert not result(decision, "held_out/mixed", "beats_champion_ci").passed
    assert not decision.passed
    # the margin over the champion is a version tag; the interval and its sessions are in the record
    estimate = decision.statistics["paired"]["champion"]["estimate"]
    assert decision.summary_tags()["gate.champion_margin_pct"] == f"{estimate:.4g}"
    row = next(
        item for item in decision.criteria_record()["criteria"] if item["criterion"] == "beats_champion_ci"
    )
    assert (row["comparison"], row["threshold"], row["verdict"]) == (">", 0.0, "fail")
    assert decision.criteria_record()["statistics"]["paired"]["champion"]["sessions"] == SESSIONS
    # with no champion there is no champion criterion
    alone = decide(everywhere(), None, GateCriteria(), evidence_for(returns(0.01)))
    assert not [item for item in alone.results if item.criterion == "beats_champion_ci"]


def test_the_statistics_cannot_be_skipped_by_leaving_out_the_evidence() -> None:
    decision = decide(everywhere(), None, GateCriteria())
    assert not decision.passed
    assert "no paired session returns" in result(decision, "held_out/mixed", "beats_flat_ci").reason


def test_the_paired_decision_is_deterministic() -> None:
    evidence = evidence_for(returns(0.002, spread=0.004, seed=5))
    first = decide(everywhere(), None, GateCriteria(), evidence)
    second = decide(everywhere(), None, GateCriteria(), evidence)
    assert json.dumps(first.to_dict()) == json.dumps(second.to_dict())


def test_the_deflated_sharpe_ratio_is_a_criterion_when_configured() -> None:
    criteria = GateCriteria(min_deflated_sharpe=0.95)
    strong = decide(everywhere(), None, criteria, evidence_for(returns(0.01)))
    assert result(strong, "held_out/mixed", "deflated_sharpe").passed
    weak = decide(everywhere(), None, criteria, evidence_for(returns(0.001, spread=0.004, seed=2)))
    deflated = result(weak, "held_out/mixed", "deflated_sharpe")
    assert not deflated.passed and deflated.value is not None and deflated.value < 0.95
    tags = strong.summary_tags()
    assert 0.0 <= float(tags["gate.deflated_sharpe"]) <= 1.0
    statistics = strong.criteria_record()["statistics"]
    assert statistics["candidates_compared"] == 3
    assert statistics["deflated_sharpe"]["n_trials"] == 3


def test_unequal_paired_sessions_are_refused() -> None:
    with pytest.raises(ValueError, match="same sessions"):
        GateEvidence(session_returns={"candidate": [0.0, 1.0], "flat": [0.0]})


def _with_health(evidence: GateEvidence, score: float | None) -> GateEvidence:
    health = None if score is None else {"score": score, "rollouts": 24.0, "selection_trades_error": 0.1}
    return dataclasses.replace(evidence, controller_health=health)


def test_controller_health_is_reported_and_judged_only_when_configured() -> None:
    evidence = _with_health(evidence_for(returns(0.01)), 0.4)
    reported = decide(everywhere(), None, GateCriteria(), evidence)
    assert reported.passed
    assert reported.statistics["controller_health"]["score"] == 0.4
    assert not [item for item in reported.results if item.criterion == "controller_health"]
    report = gate_report(reported, candidate=everywhere(), champion=None, baselines={}, links={})
    assert "**Reward controller health:** 0.4" in report

    judged = decide(everywhere(), None, GateCriteria(min_controller_health=0.5), evidence)
    assert not judged.passed
    criterion = result(judged, "training", "controller_health")
    assert criterion.value == 0.4 and "fails >= 0.5" in criterion.reason
    healthy = decide(everywhere(), None, GateCriteria(min_controller_health=0.5), _with_health(evidence, 0.8))
    assert healthy.passed


def test_a_required_health_without_a_measurement_fails_closed() -> None:
    decision = decide(
        everywhere(), None, GateCriteria(min_controller_health=0.5), evidence_for(returns(0.01))
    )
    assert not decision.passed
    assert "no controller health" in result(decision, "training", "controller_health").reason
