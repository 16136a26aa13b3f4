import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.validation.support import CRITERIA, GOOD, everywhere, result
from validation.gate import decide
from validation.gate_criteria import CHAMPION_CRITERION, CRITERION_METRICS, NO_CHAMPION_SCENARIO, GateCriteria
from validation.gate_report import gate_report

# The threshold tests below judge metrics alone; the paired statistics have their own tests in
# test_gate_evidence.py.


def legacy(**settings: object) -> GateCriteria:
    """Criteria without the paired-session criteria (which need per-session returns)."""
    return GateCriteria(paired_baselines=(), **settings)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------- criteria


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
    row = _row(decision.criteria_record(), "stress/mixed", "sharpe")
    assert (row["value"], row["verdict"]) == (None, "fail")


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
    row = _row(decision.criteria_record(), "held_out/trending", "max_drawdown")
    assert (row["value"], row["verdict"], row["comparison"], row["threshold"]) == (
        None,
        "not evaluated",
        "<=",
        2.0,
    )


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
    tags = decision.summary_tags()
    assert tags == {
        "gate.verdict": "failed",
        "gate.reason": decision.reason,
        "gate.champion": "comparable",
        "gate.test_sharpe": "1.2",
        "gate.champion_margin_pct": "missing",  # a champion, but no paired sessions to compare on
        "gate.deflated_sharpe": "unavailable",
    }
    assert all(isinstance(value, str) for value in tags.values())
    alone = decide(everywhere(), None, CRITERIA).summary_tags()
    assert (alone["gate.verdict"], alone["gate.champion_margin_pct"]) == ("passed", "no champion")


def _row(record: dict[str, Any], scenario: str, criterion: str) -> dict[str, Any]:
    rows = [row for row in record["criteria"] if (row["scenario"], row["criterion"]) == (scenario, criterion)]
    assert len(rows) == 1, rows
    return rows[0]


def test_the_criteria_record_holds_every_criterion_with_value_threshold_and_verdict() -> None:
    metrics = everywhere()
    metrics["stress/mixed"]["win_rate"] = math.nan
    metrics["held_out/trending"] = {"episodes": 0.0}
    decision = decide(metrics, everywhere(total_return_pct=1.4), CRITERIA)
    record = json.loads(
        json.dumps(
            decision.criteria_record(champion_version="7", scenario_episodes={"held_out/mixed": 10.0}),
            allow_nan=False,
        )
    )
    assert (record["verdict"], record["reason"]) == ("failed", decision.reason)
    assert record["counts"] == {"criteria": len(decision.results), "evaluated": 25, "failed": 1}
    assert [(row["scenario"], row["criterion"]) for row in record["criteria"]] == [
        (item.scenario, item.criterion) for item in decision.results
    ]
    assert _row(record, "held_out/mixed", "total_return") == {
        "scenario": "held_out/mixed",
        "criterion": "total_return",
        "metric": "total_return_pct",
        "value": 1.5,
        "comparison": ">=",
        "threshold": 1.0,
        "rule": ">= 1.0",
        "verdict": "pass",
        "reason": "total_return_pct = 1.5 meets >= 1.0",
        "episodes": 10.0,
    }
    trades = _row(record, "stress/trending", "trades_per_day")
    assert (trades["comparison"], trades["threshold"], trades["value"]) == ("in", [5.0, 25.0], 10.0)
    assert "episodes" not in trades
    beaten = _row(record, "held_out/mixed", CHAMPION_CRITERION)
    assert (beaten["comparison"], beaten["threshold"], beaten["verdict"]) == (">", 1.4, "pass")
    nan = _row(record, "stress/mixed", "win_rate")
    assert (nan["value"], nan["verdict"]) == (None, "fail")
    assert _row(record, "held_out/trending", "max_drawdown")["verdict"] == "not evaluated"
    assert record["statistics"]["champion"] == "comparable"
    assert record["statistics"]["champion_version"] == "7"
    # a rule stated in words keeps its words and has no number
    incomparable = decide(everywhere(), None, CRITERIA, champion_problem="feature list differs")
    row = _row(incomparable.criteria_record(), NO_CHAMPION_SCENARIO, CHAMPION_CRITERION)
    assert (row["comparison"], row["threshold"], row["verdict"]) == (None, None, "fail")
    assert row["rule"] == "a champion comparable on tonight's observations"


def test_the_reason_tag_is_short() -> None:
    metrics = everywhere(max_drawdown_pct=3.5, sharpe=0.1, win_rate=0.1)
    decision = decide(metrics, None, CRITERIA)
    assert len(decision.reason) > 300
    reason = decision.summary_tags(reason_chars=300)["gate.reason"]
    assert len(reason) <= 300 and reason.endswith("\u2026")
    assert decision.reason.startswith(reason[:-1])


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
    assert decision.summary_tags()["gate.champion"] == "incomparable, replaced"
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
