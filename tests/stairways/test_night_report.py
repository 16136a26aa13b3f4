"""The night report: statistics by hand, every section rendered, text escaped, small samples flagged."""

import math
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from envs.evaluation import COST_COMPONENTS, EpisodeRecord
from stairways.assessment import Assessment
from stairways.night_figures import compounded, drawdown
from stairways.night_report import (
    FEW_SESSIONS,
    Change,
    NightReport,
    changes_between,
    params_changes,
    performance_statistics,
    render_night_report,
)
from training.outcome import CycleResult
from validation.costs import transaction_costs
from validation.drift import DriftRow
from validation.gate_decision import CriterionResult, GateDecision


def test_performance_statistics_match_hand_computation() -> None:
    returns = [0.01, -0.005, 0.002, 0.004, -0.001]
    stats = performance_statistics(returns)
    series = np.asarray(returns)
    assert stats["sessions"] == 5
    assert stats["total_return_pct"] == pytest.approx(100 * (np.prod(1 + series) - 1))
    assert stats["sharpe"] == pytest.approx(series.mean() / series.std(ddof=1) * math.sqrt(252))
    equity = compounded(returns)
    assert stats["max_drawdown_pct"] == pytest.approx(100 * drawdown(equity).min())
    assert math.isnan(performance_statistics([])["sharpe"])


def test_compounded_equity_and_drawdown() -> None:
    equity = compounded([0.1, -0.5, 0.2])
    assert equity == pytest.approx([1.0, 1.1, 0.55, 0.66])
    assert drawdown(equity) == pytest.approx([0.0, 0.0, -0.5, 0.66 / 1.1 - 1.0])


def test_changes_name_only_what_differs() -> None:
    labels = {"data.digest": "data digest", "git_sha": "code"}
    changes = changes_between(
        {"data.digest": "a", "git_sha": "x"}, {"data.digest": "b", "git_sha": "x"}, labels=labels
    )
    assert changes == [Change("data digest", "a", "b")]
    params = params_changes({"seed": "1", "gone": "1"}, {"seed": "2", "new": "3"})
    assert [change.what for change in params] == ["config gone", "config new", "config seed"]
    assert params[0].tonight == "(absent)" and params[1].previous == "(absent)"


def _record(session: str, total: float) -> EpisodeRecord:
    length = 4
    shares = np.array([[0, 0], [10, 0], [10, -5], [0, -5], [0, 0]], dtype=np.float64)
    prices = np.full((length + 1, 2), 100.0)
    return EpisodeRecord(
        session=session,
        equity=np.linspace(100_000.0, 100_000.0 * (1 + total), length + 1),
        positions=np.sign(shares),
        shares=shares,
        open=prices,
        close=prices,
        actions=np.array([0, 1, 4, 8]),
        orders=np.count_nonzero(np.diff(shares, axis=0), axis=1),
        rewards=np.zeros(length),
        costs=dict.fromkeys(COST_COMPONENTS, 1.0),
        agent_orders=3,
        flatten_orders=1,
        partial_fills=0,
        daily_loss_stops=0,
        loss_streak_stops=0,
        terminated_early=False,
        length=length,
        reward=0.0,
        bar_minutes=1,
        initial_capital=100_000.0,
    )


def _report(tmp_path: Path, *, sessions: int = 3, drift: list[DriftRow] | None = None) -> NightReport:
    names = [f"2025-02-{day:02d}" for day in range(3, 3 + sessions)]
    records = [_record(name, 0.001 * (index - 1)) for index, name in enumerate(names)]
    returns = {"candidate": [r.total_return for r in records], "flat": [0.0] * sessions}
    metrics = {"held_out/mixed": {"episodes": float(sessions), "sharpe": 0.5}}
    assessment = Assessment(
        candidate=metrics,
        champion=None,
        champion_note="no champion",
        champion_problem=None,
        baselines={"flat": metrics},
        session_returns=returns,
        replay_pnl=[],
        equity_plots={},
        paired_sessions=tuple(names),
        transaction_costs=transaction_costs(records, [np.full((5, 2), 1000.0)] * sessions),
        sample_episode=records[1],
    )
    decision = GateDecision(
        passed=False,
        reason="gate rejected <script>alert(1)</script>",
        results=(
            CriterionResult("held_out/mixed", "sharpe", "sharpe", 0.5, ">= 0.6", False, "too low"),
            CriterionResult(
                "held_out/trending", "sharpe", "sharpe", None, ">= 0.6", False, "none", evaluated=False
            ),
        ),
        statistics={
            "scenario": "held_out/mixed",
            "paired": {
                "flat": {
                    "estimate": 0.1,
                    "lower": -0.2,
                    "upper": 0.3,
                    "confidence": 0.95,
                    "sessions": sessions,
                }
            },
            "deflated_sharpe": {"probability": 0.4, "n_trials": 3},
        },
    )
    trajectory = pl.DataFrame(
        {
            "cycle": [1, 1, 2],
            "greedy_trades_per_day": [10.0, 12.0, 14.0],
            "sampled_trades_per_day": [11.0, 12.0, 13.0],
            "target_trades_per_day": [15.0, 15.0, 15.0],
            "hold_bonus": [0.1, 0.1, 0.2],
            "ticket_cost": [1.0, 1.1, 1.2],
        }
    )
    cycles = [
        CycleResult(
            cycle=cycle,
            checkpoint=tmp_path,
            metrics={"hold_rate": 0.5},
            evaluation={"score": 0.1 * cycle, "trades_per_day": 12.0},
            divergence=0.01,
            rolled_back=False,
            warm_start_reason="fresh start",
            trajectory=trajectory.filter(pl.col("cycle") == cycle),
            learning_curve=pl.DataFrame(
                {"step": [64.0, 128.0], "entropy": [2.1, 2.0], "value_loss": [1.0, 0.5]}
            ),
        )
        for cycle in (1, 2)
    ]
    return NightReport(
        run_id="abc123",
        links={
            "MLflow run": "http://127.0.0.1:5000/#/experiments/1/runs/abc123",
            "model version": "models:/m/1",
        },
        symbols=("NVDA", "MSFT"),
        dataset={"source": "synthetic", "rows": 100, "repairs": {"exact_duplicates_dropped": 2}},
        qc={"evaluated": 42, "successful": 42},
        labels={
            "by_horizon": {"10": {"NVDA": {"n_events": 50, "class_balance": {"-1": 0.2, "0": 0.6, "1": 0.2}}}}
        },
        windows={"train_start": "2025-01-02", "test_end": "2025-02-10"},
        cycles=cycles,
        best_cycle=2,
        training_stop="ran all 2 cycles",
        decision=decision,
        assessment=assessment,
        promotion="version 1 registered (rejected); champion unchanged (none)",
        drift=drift,
        drift_note="no champion to compare with" if drift is None else "against champion version 1",
        changes=[Change("data digest", "a", "b")],
        generated_at="2026-12-08T00:00:00+00:00",
    )


def test_every_section_renders_self_contained_and_escaped(tmp_path: Path) -> None:
    page = render_night_report(_report(tmp_path))
    for heading in (
        "Data and QC",
        "Labels (triple barrier)",
        "Windows",
        "Learning curves",
        "Reward controller",
        "Gate",
        "Paired sessions (held_out/mixed)",
        "compounded over 3 sessions",
        "A sample session: 2025-02-04",
        "Transaction costs (candidate, 3 test sessions)",
        "Since the previous night",
    ):
        assert heading in page, heading
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count('src="data:image/png;base64,') == 4  # learning, controller, equity, session
    assert 'href="http://127.0.0.1:5000/#/experiments/1/runs/abc123"' in page
    assert "<code>models:/m/1</code>" in page
    assert "exact_duplicates_dropped" in page
    # every gate criterion with its threshold, verdict and sample size; the unevaluated one says so
    row = re.search(r"<tr><td class=\"l\">held_out/mixed</td>.*?</tr>", page)
    assert (
        row is not None and "&gt;= 0.6" in row.group(0) and "fail" in row.group(0) and ">3<" in row.group(0)
    )
    assert "not evaluated" in page


def test_few_sessions_are_flagged_and_many_are_not(tmp_path: Path) -> None:
    assert f"under {FEW_SESSIONS} sessions" in render_night_report(_report(tmp_path, sessions=3))
    assert "indicative only" not in render_night_report(_report(tmp_path, sessions=FEW_SESSIONS))


def test_drift_lists_drifted_columns_first(tmp_path: Path) -> None:
    rows = [
        DriftRow("NVDA:rsi_14", 0.01, 0.02, 0.9, 100, 100, False),
        DriftRow("NVDA:signal", 0.6, 0.4, 1e-9, 100, 100, True),
    ]
    page = render_night_report(_report(tmp_path, drift=rows))
    assert "Drift: 1 of 2 columns" in page
    assert page.index("NVDA:signal") < page.index("NVDA:rsi_14")
    assert "no champion to compare with" in render_night_report(_report(tmp_path))
