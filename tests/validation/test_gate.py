import dataclasses
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from validation.gate import (
    CHAMPION_CRITERION,
    CRITERION_METRICS,
    NO_CHAMPION_SCENARIO,
    CriterionResult,
    GateCriteria,
    GateDecision,
    GateEvidence,
    decide,
    default_scenario_criteria,
    gate_report,
    scenario_key,
)

# The threshold tests below judge metrics alone; the paired statistics have their own tests further down.
CRITERIA = GateCriteria(paired_baselines=())


def legacy(**settings: object) -> GateCriteria:
    """Criteria without the paired-session criteria (which need per-session returns)."""
    return GateCriteria(paired_baselines=(), **settings)  # type: ignore[arg-type]


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


# ----------------------------------------------------------------------------------------------- criteria


def test_default_scenario_criteria() -> None:
    table = default_scenario_criteria()
    assert len(table) == 10
    assert table["held_out/mixed"] == table["stress/mixed"] == tuple(CRITERION_METRICS)
    for kind in ("held_out", "stress"):
        for name in ("high_volatility", "low_volatility", "trending", "correlation_breakdown"):
            assert table[scenario_key(kind, name)] == ("max_drawdown", "trades_per_day")
    assert CRITERIA.required_scenarios == ("held_out/mixed", "stress/mixed")


def test_good_metrics_pass_every_criterion_and_list_them() -> None:
    decision = decide(everywhere(), None, CRITERIA)
    assert decision.passed
    assert len(decision.results) == 2 * 5 + 8 * 2 + 1
    assert all(item.passed and item.evaluated for item in decision.results)
    assert decision.reason == "all 27 evaluated criteria passed"
    mixed = result(decision, "held_out/mixed", "total_return")
    assert (mixed.metric, mixed.value, mixed.threshold) == ("total_return_pct", 1.5, ">= 1.0")
    assert result(decision, "stress/trending", "trades_per_day").threshold == "in [5.0, 25.0]"
    champion = result(decision, NO_CHAMPION_SCENARIO, CHAMPION_CRITERION)
    assert champion.passed and champion.reason == "no champion"


@pytest.mark.parametrize(
    ("metric", "good", "bad", "criterion"),
    [
        ("total_return_pct", 1.0, 0.99, "total_return"),
        ("max_drawdown_pct", 2.0, 2.01, "max_drawdown"),
        ("trades_per_day", 5.0, 4.99, "trades_per_day"),
        ("trades_per_day", 25.0, 25.01, "trades_per_day"),
        ("sharpe", 0.6, 0.59, "sharpe"),
        ("win_rate", 0.65, 0.649, "win_rate"),
    ],
)
def test_each_criterion_passes_at_its_threshold_and_fails_beyond(
    metric: str, good: float, bad: float, criterion: str
) -> None:
    at_threshold = everywhere()
    at_threshold["held_out/mixed"][metric] = good
    assert decide(at_threshold, None, CRITERIA).passed
    beyond = everywhere()
    beyond["held_out/mixed"][metric] = bad
    decision = decide(beyond, None, CRITERIA)
    assert not decision.passed
    failed = decision.failures()
    assert [(item.scenario, item.criterion) for item in failed] == [("held_out/mixed", criterion)]
    assert failed[0].value == bad
    assert "fails" in failed[0].reason
    assert f"held_out/mixed {criterion}" in decision.reason


def test_criteria_apply_only_where_configured() -> None:
    # a poor return on a regime scenario is not gated there by default, a deep drawdown is
    metrics = everywhere()
    metrics["stress/high_volatility"]["total_return_pct"] = -5.0
    metrics["stress/high_volatility"]["sharpe"] = -1.0
    assert decide(metrics, None, CRITERIA).passed
    metrics["stress/high_volatility"]["max_drawdown_pct"] = 4.0
    decision = decide(metrics, None, CRITERIA)
    assert [(item.scenario, item.criterion) for item in decision.failures()] == [
        ("stress/high_volatility", "max_drawdown")
    ]
    strict = legacy(scenario_criteria={"held_out/mixed": ("sharpe",)}, required_scenarios=("held_out/mixed",))
    decision = decide({"held_out/mixed": {**GOOD, "max_drawdown_pct": 9.0}}, None, strict)
    assert decision.passed
    assert [(item.scenario, item.criterion) for item in decision.results] == [
        ("held_out/mixed", "sharpe"),
        (NO_CHAMPION_SCENARIO, CHAMPION_CRITERION),
    ]


def test_a_negative_drawdown_is_malformed() -> None:
    metrics = everywhere()
    metrics["held_out/mixed"]["max_drawdown_pct"] = -0.5
    failed = decide(metrics, None, CRITERIA).failures()
    assert [item.criterion for item in failed] == ["max_drawdown"]
    assert "non-negative magnitude" in failed[0].reason


@pytest.mark.parametrize("value", [math.nan, None])
def test_missing_or_nan_metrics_fail_with_the_reason(value: float | None) -> None:
    metrics = everywhere()
    if value is None:
        del metrics["stress/mixed"]["sharpe"]
        expected = "metric 'sharpe' is missing"
    else:
        metrics["stress/mixed"]["sharpe"] = value
        expected = "metric 'sharpe' is NaN"
    decision = decide(metrics, None, CRITERIA)
    assert not decision.passed
    failed = decision.failures()
    assert [(item.scenario, item.criterion, item.reason) for item in failed] == [
        ("stress/mixed", "sharpe", expected)
    ]
    assert decision.metric_tags()["gate.stress/mixed.sharpe"] == ("missing" if value is None else "nan")


# ------------------------------------------------------------------------------------------ empty scenarios


def test_an_empty_scenario_is_listed_as_not_evaluated_and_named_in_the_reason() -> None:
    metrics = everywhere()
    metrics["held_out/trending"] = {"episodes": 0.0}
    del metrics["held_out/correlation_breakdown"]
    decision = decide(metrics, None, CRITERIA)
    assert decision.passed
    skipped = [item for item in decision.results if not item.evaluated]
    assert {(item.scenario, item.criterion) for item in skipped} == {
        ("held_out/trending", "max_drawdown"),
        ("held_out/trending", "trades_per_day"),
        ("held_out/correlation_breakdown", "max_drawdown"),
        ("held_out/correlation_breakdown", "trades_per_day"),
    }
    assert all(not item.passed for item in skipped)
    assert "no episodes (episodes = 0.0)" in result(decision, "held_out/trending", "max_drawdown").reason
    assert "no metrics" in result(decision, "held_out/correlation_breakdown", "trades_per_day").reason
    assert "all 23 evaluated criteria passed" in decision.reason
    assert (
        "not evaluated (no episodes): ['held_out/trending', 'held_out/correlation_breakdown']"
        in decision.reason
    )
    assert decision.metric_tags()["gate.held_out/trending.max_drawdown"] == "not evaluated"


@pytest.mark.parametrize("empty", [{"episodes": 0.0}, {}, None])
def test_an_empty_required_scenario_fails_the_gate(empty: dict[str, float] | None) -> None:
    metrics = everywhere()
    if empty is None:
        del metrics["held_out/mixed"]
    else:
        metrics["held_out/mixed"] = empty
    decision = decide(metrics, None, CRITERIA)
    assert not decision.passed
    assert "required scenarios without episodes: ['held_out/mixed']" in decision.reason
    assert decision.failures() == ()  # nothing evaluated failed: the missing scenario did
    assert "this scenario is required" in result(decision, "held_out/mixed", "sharpe").reason


# ---------------------------------------------------------------------------------------------- champion


def test_the_candidate_must_beat_the_champion_strictly_by_the_margin() -> None:
    champion = everywhere(total_return_pct=1.4)
    assert decide(everywhere(), champion, CRITERIA).passed
    beaten = result(decide(everywhere(), champion, CRITERIA), "held_out/mixed", CHAMPION_CRITERION)
    assert beaten.threshold == "> champion 1.4 + 0.0"
    assert beaten.value == 1.5
    tie = decide(everywhere(), everywhere(), CRITERIA)
    assert not tie.passed
    assert "a tie does not beat the champion" in tie.reason
    margin = legacy(champion_margin=0.2)
    assert not decide(everywhere(), champion, margin).passed  # 1.5 > 1.4 + 0.2 is false
    assert decide(everywhere(total_return_pct=1.61), champion, margin).passed
    # only the primary scenario is compared by default
    assert [
        item.scenario
        for item in decide(everywhere(), champion, CRITERIA).results
        if item.criterion == CHAMPION_CRITERION
    ] == ["held_out/mixed"]


def test_the_champion_comparison_can_cover_every_shared_scenario_and_lower_is_better() -> None:
    every = legacy(champion_scenarios=None)
    champion = everywhere(total_return_pct=1.0)
    champion.pop("stress/trending")
    champion["held_out/trending"] = {"episodes": 0.0}
    decision = decide(everywhere(), champion, every)
    compared = [item.scenario for item in decision.results if item.criterion == CHAMPION_CRITERION]
    assert len(compared) == 8
    assert "stress/trending" not in compared and "held_out/trending" not in compared
    assert decision.passed
    champion["stress/low_volatility"]["total_return_pct"] = 2.0
    decision = decide(everywhere(), champion, every)
    assert [(item.scenario, item.criterion) for item in decision.failures()] == [
        ("stress/low_volatility", CHAMPION_CRITERION)
    ]
    drawdown = legacy(champion_metric="max_drawdown_pct", champion_direction="lower", champion_margin=0.1)
    assert decide(everywhere(max_drawdown_pct=1.0), everywhere(max_drawdown_pct=1.2), drawdown).passed
    assert not decide(everywhere(max_drawdown_pct=1.15), everywhere(max_drawdown_pct=1.2), drawdown).passed


def test_a_champion_without_metrics_on_the_scenario_fails_the_comparison() -> None:
    champion = everywhere()
    del champion["held_out/mixed"]
    decision = decide(everywhere(), champion, CRITERIA)
    assert not decision.passed
    assert "re-evaluate the champion" in result(decision, "held_out/mixed", CHAMPION_CRITERION).reason
    champion = everywhere(total_return_pct=math.nan)
    decision = decide(everywhere(), champion, CRITERIA)
    assert (
        "champion: metric 'total_return_pct' is NaN"
        in result(decision, "held_out/mixed", CHAMPION_CRITERION).reason
    )
    nothing_shared = decide(everywhere(), {"other/scenario": GOOD}, legacy(champion_scenarios=None))
    assert not nothing_shared.passed
    assert (
        "share no gated scenario" in result(nothing_shared, NO_CHAMPION_SCENARIO, CHAMPION_CRITERION).reason
    )


# ----------------------------------------------------------------------------------------------- config


def test_criteria_configuration_is_validated() -> None:
    with pytest.raises(ValidationError, match="unknown criteria \\['profit'\\]"):
        GateCriteria(scenario_criteria={"held_out/mixed": ("profit",)}, required_scenarios=())
    with pytest.raises(ValidationError, match="must look like"):
        GateCriteria(scenario_criteria={"mixed": ("sharpe",)}, required_scenarios=())
    with pytest.raises(ValidationError, match="exceeds max_trades_per_day"):
        GateCriteria(min_trades_per_day=30.0)
    with pytest.raises(ValidationError, match="required scenario 'stress/mixed' has no entry"):
        GateCriteria(scenario_criteria={"held_out/mixed": ("sharpe",)})
    with pytest.raises(ValidationError, match="lists a criterion twice"):
        GateCriteria(scenario_criteria={"held_out/mixed": ("sharpe", "sharpe")}, required_scenarios=())
    with pytest.raises(ValidationError):
        GateCriteria(champion_margin=-0.1)
    with pytest.raises(ValidationError, match="frozen"):
        CRITERIA.min_sharpe = 0.0  # type: ignore[misc]
    assert GateCriteria.model_validate(CRITERIA.model_dump(mode="json")) == CRITERIA


# ----------------------------------------------------------------------------------------------- output


def test_decision_serializes_and_tags_are_flat_strings() -> None:
    metrics = everywhere()
    metrics["stress/mixed"]["win_rate"] = math.nan
    decision = decide(metrics, everywhere(total_return_pct=1.0), CRITERIA)
    payload = json.loads(json.dumps(decision.to_dict(), allow_nan=False))
    assert payload["passed"] is False
    assert len(payload["results"]) == len(decision.results)
    nan_row = next(
        row
        for row in payload["results"]
        if row["scenario"] == "stress/mixed" and row["criterion"] == "win_rate"
    )
    assert nan_row["value"] is None and nan_row["passed"] is False
    tags = decision.metric_tags()
    assert tags["gate.held_out/mixed.total_return"] == "1.5"
    assert tags["gate.held_out/mixed.beats_champion"] == "1.5"
    assert tags["gate.stress/mixed.win_rate"] == "nan"
    assert len(tags) == len(decision.results) + 1
    assert tags["gate.champion"] == "comparable"
    assert (
        decide(everywhere(), None, CRITERIA).metric_tags()[
            f"gate.{NO_CHAMPION_SCENARIO}.{CHAMPION_CRITERION}"
        ]
        == "no champion"
    )


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


# ------------------------------------------------------------------------------------------------ property


@given(
    st.fixed_dictionaries(
        {
            "total_return_pct": st.floats(-10, 10),
            "max_drawdown_pct": st.floats(0, 5),
            "trades_per_day": st.floats(0, 40),
            "sharpe": st.floats(-2, 3),
            "win_rate": st.floats(0, 1),
        }
    )
)
def test_the_verdict_is_the_conjunction_of_the_thresholds(metrics: dict[str, float]) -> None:
    scenario = {"held_out/mixed": {**metrics, "episodes": 10.0}}
    criteria = legacy(
        scenario_criteria={"held_out/mixed": tuple(CRITERION_METRICS)}, required_scenarios=("held_out/mixed",)
    )
    expected = (
        metrics["total_return_pct"] >= 1.0
        and metrics["max_drawdown_pct"] <= 2.0
        and 5.0 <= metrics["trades_per_day"] <= 25.0
        and metrics["sharpe"] >= 0.6
        and metrics["win_rate"] >= 0.65
    )
    decision = decide(scenario, None, criteria)
    assert decision.passed is expected
    assert len(decision.failures()) == sum(not item.passed for item in decision.results)


# ------------------------------------------------------------------------------------- incomparable champion


def test_an_incomparable_champion_fails_closed_and_says_how_to_proceed() -> None:
    problem = "champion version 4 not comparable on tonight's observations: feature list differs"
    decision = decide(everywhere(), None, CRITERIA, champion_problem=problem)
    assert not decision.passed
    failed = result(decision, NO_CHAMPION_SCENARIO, CHAMPION_CRITERION)
    assert not failed.passed and problem in failed.reason
    assert "gate.replace_incomparable_champion" in failed.reason
    assert decision.statistics["champion"] == "incomparable"
    # without a problem the same metrics pass: the failure is the incomparable champion alone
    assert decide(everywhere(), None, CRITERIA).passed


def test_replacing_an_incomparable_champion_needs_the_switch_and_says_so_loudly() -> None:
    switch = legacy(replace_incomparable_champion=True)
    decision = decide(everywhere(), None, switch, champion_problem="checkpoint missing")
    assert decision.passed
    assert (
        "INCOMPARABLE CHAMPION REPLACED" in result(decision, NO_CHAMPION_SCENARIO, CHAMPION_CRITERION).reason
    )
    assert decision.metric_tags()["gate.champion"] == "incomparable, replaced"
    report = gate_report(decision, candidate=everywhere(), champion=None, baselines={}, links={})
    assert "WARNING: an incomparable champion was replaced" in report


# ------------------------------------------------------------------------------------------- small slices


def test_ratio_criteria_are_not_judged_on_small_slices_but_their_count_is_shown() -> None:
    criteria = legacy(
        scenario_criteria={
            "held_out/mixed": tuple(CRITERION_METRICS),
            "held_out/trending": ("sharpe", "win_rate"),
        },
        required_scenarios=("held_out/mixed",),
    )
    metrics = {"held_out/mixed": dict(GOOD), "held_out/trending": {**GOOD, "sharpe": 16.0, "episodes": 2.0}}
    decision = decide(metrics, None, criteria)
    assert decision.passed
    sharpe = result(decision, "held_out/trending", "sharpe")
    assert not sharpe.evaluated and "only 2 episodes" in sharpe.reason
    # the same slice with a losing Sharpe still does not fail the gate: it is not judged at all
    metrics["held_out/trending"]["sharpe"] = -5.0
    assert decide(metrics, None, criteria).passed
    report = gate_report(decision, candidate=metrics, champion=None, baselines={}, links={})
    assert "| held_out/trending | 2 | sharpe |" in report


def test_a_required_scenario_with_too_few_episodes_fails_on_ratios() -> None:
    metrics = everywhere()
    metrics["held_out/mixed"] = {**GOOD, "episodes": 3.0}
    decision = decide(metrics, None, CRITERIA)
    assert not decision.passed
    assert "too few for a required scenario" in result(decision, "held_out/mixed", "sharpe").reason


# ------------------------------------------------------------------------------------------ paired statistics

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
    tags = strong.metric_tags()
    assert tags["gate.candidates_compared"] == "3"
    assert 0.0 <= float(tags["gate.deflated_sharpe"]) <= 1.0


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
    decision = decide(everywhere(), None, GateCriteria(min_controller_health=0.5), evidence_for(returns(0.01)))
    assert not decision.passed
    assert "no controller health" in result(decision, "training", "controller_health").reason
