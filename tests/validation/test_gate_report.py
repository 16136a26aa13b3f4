from tests.validation.support import CRITERIA, everywhere, evidence_for, returns
from validation.gate import decide
from validation.gate_criteria import GateCriteria
from validation.gate_report import gate_report


def test_gate_report_tabulates_candidate_champion_and_baselines() -> None:
    candidate = everywhere()
    champion = everywhere(total_return_pct=1.25)
    baselines = {
        "flat": everywhere(total_return_pct=0.0),
        "buy_and_hold": everywhere(total_return_pct=0.75),
        "signal_rule": everywhere(total_return_pct=-0.5),
    }
    decision = decide(candidate, champion, CRITERIA)
    links = {
        "MLflow run": "http://mlflow/#/runs/abc",
        "model version": "http://mlflow/#/models/agent/versions/3",
    }
    report = gate_report(decision, candidate=candidate, champion=champion, baselines=baselines, links=links)
    assert report.startswith("# Promotion gate: PASSED")
    assert decision.reason in report
    header = "scenario | n | criterion | metric | threshold | candidate | champion | flat | buy_and_hold | signal_rule"
    assert f"| {header} | result |" in report
    assert (
        "| held_out/mixed | 10 | total_return | total_return_pct | >= 1.0 | 1.5 | 1.25 | 0 | 0.75 | -0.5 | pass |"
        in report
    )
    assert "[http://mlflow/#/runs/abc](http://mlflow/#/runs/abc)" in report
    assert "model version" in report
    assert report.count("\n| ") == len(decision.results) + 1
    rejected = decide(everywhere(trades_per_day=40.0), None, CRITERIA)
    text = gate_report(
        rejected, candidate=everywhere(trades_per_day=40.0), champion=None, baselines={}, links={}
    )
    assert text.startswith("# Promotion gate: REJECTED")
    assert "in [5.0, 25.0] | 40 | - | **fail** |" in text
    assert "## Why" in text


def test_the_report_shows_intervals_candidates_compared_and_the_rule_verdict() -> None:
    decision = decide(everywhere(), None, GateCriteria(), evidence_for(returns(0.01)))
    report = gate_report(
        decision,
        candidate=everywhere(),
        champion=None,
        baselines={"signal_rule": everywhere(total_return_pct=0.5)},
        links={},
        windows={
            "train_start": "a",
            "train_end": "b",
            "selection_start": "c",
            "selection_end": "d",
            "test_start": "e",
            "test_end": "f",
            "purge_bars": 50,
        },
    )
    assert "## Paired sessions (held_out/mixed)" in report
    assert "| flat |" in report and "| signal_rule |" in report
    assert "the best expected of 3 candidates compared" in report
    assert "**Agent vs signal rule:** the agent beats the signal rule with confidence" in report
    assert "train a .. b; selection c .. d; test e .. f (purge gaps of 50 bars)" in report
