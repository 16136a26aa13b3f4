"""Walk-forward of the whole nightly recipe: judge the pipeline, not one model.

The history is loaded, normalized and QC'd once. Night ``k`` (``0 .. nights - 1``, oldest first) sees only the
sessions up to its data end; the data ends of consecutive nights are ``step_sessions`` sessions apart, and the
last night still leaves ``follow_sessions`` sessions after it. Each night runs the nightly stages on its
truncated history exactly as the flow does (features, labels, window split, causal signal, training cycles
warm-started from the champion so far, scenarios, assessment against that champion, the gate). A passing gate
makes the night's candidate the champion. Then the champion in force after the night (the new one, the
previous one when the gate refused, or none) is followed on the ``follow_sessions`` sessions right after the
night's data end, with buy-and-hold on the same sessions for comparison.

The follow block's observations are built as a night's test window is: features and a causal signal on the
bars up to the end of the follow block, with a fresh walk-forward signal model starting at the block (it only
learns labels that ended before each row), regime scores bootstrapped from the sessions before it.

Files under ``output_dir``: ``night-<k>/cycles`` (the night's checkpoints), ``night-<k>/plots`` (the
assessment's equity plots) and ``night-<k>/champion`` (a copy of a promoted candidate, kept for the nights
after). :meth:`WalkForwardReport.write` writes the report. Same config and seed, same records on CPU (except
the wall time).
"""

import dataclasses
import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from core.errors import ConfigError
from envs.evaluation import evaluate_episodes, session_markets
from envs.market_arrays import MarketArrays
from envs.policies import BuyAndHoldPolicy
from market.calendar import EXCHANGE_TZ
from market.normalize import NormalizedBars
from stairways import pipeline
from stairways.assessment import REPLAY_SCENARIO, ChampionInput, assess, build_scenarios, judge
from stairways.config import RetrainConfig
from stairways.walk_forward_report import (
    CANDIDATE_FIGURES,
    FOLLOW_FIGURES,
    NightRecord,
    WalkForwardConfig,
    WalkForwardReport,
)
from training.checkpoints import load_checkpoint
from training.cycles import run_cycles
from training.evaluation import evaluate_sessions
from training.outcome import night_health
from training.ppo import torch_threads
from validation.qc import raise_for_qc
from validation.windows import WindowConfig, WindowPlan, plan_windows

__all__ = [
    "CANDIDATE_FIGURES",
    "FOLLOW_FIGURES",
    "NightRecord",
    "WalkForwardConfig",
    "WalkForwardReport",
    "night_data_ends",
    "run_walk_forward",
]

logger = logging.getLogger(__name__)


def _session_dates(ts: pl.Expr) -> pl.Expr:
    """Session (exchange calendar date) of each bar, as :mod:`validation.windows` dates them."""
    return ts.dt.convert_time_zone(str(EXCHANGE_TZ)).dt.date()


def night_data_ends(history_sessions: int, wf: WalkForwardConfig) -> list[int]:
    """Index (0-based, into the history's sessions) of each night's last session, oldest night first."""
    follow = wf.follow_block_sessions
    return [history_sessions - 1 - (wf.nights - 1 - k) * wf.step_sessions - follow for k in range(wf.nights)]


@dataclass(frozen=True)
class _History:
    """The bars through one session, with their features and labels (computed on those bars only)."""

    prepared: NormalizedBars
    features: pl.DataFrame
    labels: pl.DataFrame


@dataclass(frozen=True)
class _NightPlan:
    night: int
    end: int
    follow_end: int
    history: _History
    plan: WindowPlan
    follow: _History
    follow_plan: WindowPlan


@dataclass(frozen=True)
class _Champion:
    night: int
    checkpoint: Path


def _needed_sessions(base: RetrainConfig, *, bar_minutes: int) -> int:
    window = base.window
    windows = window.test_sessions + window.selection_sessions + window.min_train_sessions
    return max(windows, pipeline.required_history_sessions(base, bar_minutes=bar_minutes))


def _check_length(sessions: int, base: RetrainConfig, wf: WalkForwardConfig, *, bar_minutes: int) -> None:
    needed = _needed_sessions(base, bar_minutes=bar_minutes)
    after = (wf.nights - 1) * wf.step_sessions + wf.follow_block_sessions
    if sessions < needed + after:
        window = base.window
        msg = (
            f"walk-forward needs at least {needed + after} sessions of history, the data has {sessions}: "
            f"the first night needs {needed} (window.test_sessions={window.test_sessions} + "
            f"window.selection_sessions={window.selection_sessions} + window.min_train_sessions="
            f"{window.min_train_sessions}, at least the QC history minimum) and {after} more follow it "
            f"((nights - 1) x step_sessions = ({wf.nights} - 1) x {wf.step_sessions}, plus follow_sessions="
            f"{wf.follow_block_sessions}): use more history (data.synthetic.sessions or a longer export), "
            "fewer nights, or fewer step/follow sessions"
        )
        raise ConfigError(msg)


def _plan_nights(
    prepared: NormalizedBars, sessions: list[date], base: RetrainConfig, wf: WalkForwardConfig
) -> list[_NightPlan]:
    """Every night's history, window split and follow block, before anything trains (ConfigError if short)."""
    _check_length(len(sessions), base, wf, bar_minutes=prepared.bar_minutes)
    cache: dict[int, _History] = {}

    def history(last: int) -> _History:
        if last not in cache:
            bars = prepared.bars.filter(_session_dates(pl.col("ts")) <= sessions[last])
            truncated = dataclasses.replace(prepared, bars=bars)
            cache[last] = _History(
                truncated, pipeline.features_for(truncated, base), pipeline.labels_for(truncated, base)
            )
        return cache[last]

    follow = wf.follow_block_sessions
    follow_window = WindowConfig(
        selection_sessions=base.window.selection_sessions,
        test_sessions=follow,
        min_train_sessions=base.window.min_train_sessions,
    )
    plans = []
    for night, end in enumerate(night_data_ends(len(sessions), wf)):
        seen, followed = history(end), history(end + follow)
        try:
            plan = pipeline.split_windows(seen.features, base)
            follow_plan = plan_windows(
                followed.features.get_column("ts"), config=follow_window, purge_bars=max(base.labels.horizons)
            )
        except ConfigError as error:
            msg = (
                f"walk-forward night {night} (data through {sessions[end]}, {end + 1} sessions) cannot be "
                f"planned: {error}; use more history, fewer nights, or fewer step/follow sessions"
            )
            raise ConfigError(msg) from error
        plans.append(_NightPlan(night, end, end + follow, seen, plan, followed, follow_plan))
    return plans


def _follow_figures(summary: Mapping[str, float]) -> dict[str, float]:
    return {key: float(summary[key]) for key in FOLLOW_FIGURES}


def _buy_and_hold(arrays: MarketArrays, config: RetrainConfig) -> dict[str, float]:
    """Buy-and-hold on each follow session through the env (costs, flat at the close), figures as the champion's."""
    records = evaluate_episodes(BuyAndHoldPolicy(), session_markets(arrays), env_config=config.training.env)
    returns = np.asarray([record.total_return for record in records], dtype=np.float64)
    return {
        "total_return_pct": 100.0 * (float(np.prod(1.0 + returns)) - 1.0),
        "mean_return_pct": 100.0 * float(np.mean(returns)),
        "trades_per_day": sum(record.agent_orders for record in records) / len(records),
        "sessions": float(len(records)),
    }


def _follow_block(
    night: _NightPlan, champion: _Champion | None, config: RetrainConfig
) -> tuple[dict[str, float] | None, tuple[float, ...], dict[str, float]]:
    """The champion in force and buy-and-hold on the sessions after the night, observed as a test window."""
    followed = night.follow
    signal = pipeline.signal_for(followed.features, followed.labels, night.follow_plan, config)
    arrays = pipeline.training_data(
        followed.prepared, followed.features, signal, night.follow_plan, config
    ).test
    with torch_threads(config.training.ppo.torch_threads):
        buy_and_hold = _buy_and_hold(arrays, config)
        if champion is None:
            return None, (), buy_and_hold
        policy = load_checkpoint(champion.checkpoint, market=arrays)
        summary, returns = evaluate_sessions(policy, arrays, config=config.training)
    return _follow_figures(summary), tuple(float(value) for value in returns), buy_and_hold


def _run_night(
    night: _NightPlan,
    champion: _Champion | None,
    sessions: list[date],
    config: RetrainConfig,
    *,
    output_dir: Path,
) -> tuple[NightRecord, _Champion | None]:
    started = time.perf_counter()
    night_dir = output_dir / f"night-{night.night}"
    seen, plan = night.history, night.plan
    bar_minutes = seen.prepared.bar_minutes
    signal = pipeline.signal_for(seen.features, seen.labels, plan, config)
    data = pipeline.training_data(seen.prepared, seen.features, signal, plan, config)
    warm_start = None if champion is None else champion.checkpoint
    outcome = run_cycles(
        train=data.train,
        selection=data.selection,
        config=config.training,
        seed=config.seed,
        output_dir=night_dir / "cycles",
        warm_start=warm_start,
    )
    # The candidate is fixed; only now is the night's test window read.
    scenarios = build_scenarios(data, signal, config, bar_minutes=bar_minutes)
    champion_input = (
        ChampionInput(None)
        if champion is None
        else ChampionInput(champion.checkpoint, f"night-{champion.night}", "walk-forward champion")
    )
    assessment = assess(
        outcome.best_checkpoint,
        champion_input,
        scenarios,
        config,
        bar_minutes=bar_minutes,
        plots_dir=night_dir / "plots",
    )
    health = night_health(outcome.cycles, config.training)
    decision = judge(
        assessment,
        config,
        trials=[list(cycle.selection_returns) for cycle in outcome.cycles if not cycle.rolled_back],
        controller_health=None if health is None else health.as_metrics(prefix=""),
    )
    after = champion
    if decision.passed:
        kept = night_dir / "champion"
        if kept.exists():
            shutil.rmtree(kept)
        shutil.copytree(outcome.best_checkpoint, kept)
        after = _Champion(night.night, kept)
    follow, follow_returns, buy_and_hold = _follow_block(night, after, config)
    mixed = assessment.candidate[REPLAY_SCENARIO]
    record = NightRecord(
        night=night.night,
        data_end=sessions[night.end],
        sessions=night.end + 1,
        windows=plan.as_dict(),
        cycles=len(outcome.cycles),
        best_cycle=outcome.best_cycle,
        training_stop=outcome.reason,
        gate_passed=decision.passed,
        gate_reason=decision.reason,
        promoted=decision.passed,
        champion_before=None if champion is None else champion.night,
        champion_after=None if after is None else after.night,
        candidate={key: float(mixed[key]) for key in CANDIDATE_FIGURES},
        follow_start=sessions[night.end + 1],
        follow_end=sessions[night.follow_end],
        follow=follow,
        follow_session_returns=follow_returns,
        follow_buy_and_hold=buy_and_hold,
        wall_seconds=time.perf_counter() - started,
    )
    return record, after


def run_walk_forward(
    base: RetrainConfig,
    wf: WalkForwardConfig,
    *,
    output_dir: Path,
    on_night: Callable[[NightRecord], None] | None = None,
) -> WalkForwardReport:
    """Replay the nightly recipe over ``wf.nights`` rolling windows of ``base``'s history, oldest first.

    Loads, normalizes and QCs the bars once (``DataQualityError`` when they fail), plans every night before
    training anything (``ConfigError`` naming the sessions needed when the history is too short), then runs
    the nights in order, each warm-started from and judged against the champion so far. ``on_night`` is
    called with each record as soon as it exists. Checkpoints go under ``output_dir`` (see the module
    docstring); the report is returned, not written (:meth:`WalkForwardReport.write`).
    """
    market = pipeline.load_market(base)
    prepared = pipeline.prepare_bars(market.bars, base)
    raise_for_qc(pipeline.quality_check(prepared, base))
    sessions = prepared.bars.select(_session_dates(pl.col("ts")).unique().sort()).to_series().to_list()
    plans = _plan_nights(prepared, sessions, base, wf)
    output_dir = Path(output_dir)
    champion: _Champion | None = None
    records: list[NightRecord] = []
    for night in plans:
        record, champion = _run_night(night, champion, sessions, base, output_dir=output_dir)
        records.append(record)
        follow = "no champion" if record.follow is None else f"{record.follow['total_return_pct']:+.3f}%"
        logger.info(
            "walk-forward night %d/%d (data through %s): %d cycles, best %d, gate %s (%s); champion %s; "
            "follow %s..%s: champion %s, buy-and-hold %+.3f%% (%.0f s)",
            record.night + 1,
            len(plans),
            record.data_end,
            record.cycles,
            record.best_cycle,
            "PASS" if record.gate_passed else "fail",
            record.gate_reason,
            "none" if record.champion_after is None else f"night {record.champion_after}",
            record.follow_start,
            record.follow_end,
            follow,
            record.follow_buy_and_hold["total_return_pct"],
            record.wall_seconds,
        )
        if on_night is not None:
            on_night(record)
    return WalkForwardReport(
        walk_forward=wf, seed=base.seed, source=market.source, history_sessions=len(sessions), records=records
    )
