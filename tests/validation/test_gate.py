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
    decide,
    default_scenario_criteria,
    gate_report,
    scenario_key,
)

CRITERIA = GateCriteria()
GOOD = {
    "total_return_pct": 1.5,
    "max_drawdown_pct": 1.0,
    "trades_per_day": 10.0,
    "sharpe": 1.2,
    "win_rate": 0.7,
    "episodes": 3.0,
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
    strict = GateCriteria(
        scenario_criteria={"held_out/mixed": ("sharpe",)}, required_scenarios=("held_out/mixed",)
    )
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
    margin = GateCriteria(champion_margin=0.2)
    assert not decide(everywhere(), champion, margin).passed  # 1.5 > 1.4 + 0.2 is false
    assert decide(everywhere(total_return_pct=1.61), champion, margin).passed
    # only the primary scenario is compared by default
    assert [
        item.scenario
        for item in decide(everywhere(), champion, CRITERIA).results
        if item.criterion == CHAMPION_CRITERION
    ] == ["held_out/mixed"]


def test_the_champion_comparison_can_cover_every_shared_scenario_and_lower_is_better() -> None:
    every = GateCriteria(champion_scenarios=None)
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
    drawdown = GateCriteria(
        champion_metric="max_drawdown_pct", champion_direction="lower", champion_margin=0.1
    )
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
    nothing_shared = decide(everywhere(), {"other/scenario": GOOD}, GateCriteria(champion_scenarios=None))
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
    assert len(tags) == len(decision.results)
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
    header = (
        "scenario | criterion | metric | threshold | candidate | champion | flat | buy_and_hold | signal_rule"
    )
    assert f"| {header} | result |" in report
    assert (
        "| held_out/mixed | total_return | total_return_pct | >= 1.0 | 1.5 | 1.25 | 0 | 0.75 | -0.5 | pass |"
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
    scenario = {"held_out/mixed": {**metrics, "episodes": 1.0}}
    criteria = GateCriteria(
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
