"""Thin Prefect adapters for judging the candidate: scenarios (cached), evaluation, gate decision."""

import tempfile
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task

from market.normalize import NormalizedBars
from market.signal import SignalResult
from stairways import assessment, tracking
from stairways.config import RetrainConfig
from stairways.monitoring import push_metrics, resolve_pushgateway
from stairways.pipeline import TrainingData
from tasks.caching import CACHE_EXPIRATION, input_digest_key
from tasks.retrying import COMPUTE_RETRIES
from training.outcome import CycleResult, night_health
from validation.gate_decision import GateDecision
from validation.scenarios import Scenario

__all__ = ["assess_candidate", "build_validation_scenarios", "decide_gate"]

_PUSHED_METRICS = (
    "total_return_pct",
    "max_drawdown_pct",
    "sharpe",
    "win_rate",
    "trades_per_day",
    "hold_rate",
)


@task(
    name="build-scenarios",
    cache_key_fn=input_digest_key,
    cache_expiration=CACHE_EXPIRATION,
    persist_result=True,
)
def build_validation_scenarios(
    data: TrainingData, signal: SignalResult, prepared: NormalizedBars, config: RetrainConfig
) -> dict[str, Scenario]:
    """Held-out regime slices and synthetic stress scenarios (fixed seeds)."""
    scenarios = assessment.build_scenarios(data, signal, config, bar_minutes=prepared.bar_minutes)
    logger = get_run_logger()
    for key, scenario in scenarios.items():
        logger.info("scenario %s: %d episodes", key, len(scenario.episodes))
    return scenarios


@task(name="assess-candidate", **COMPUTE_RETRIES)
def assess_candidate(
    handle: tracking.RunHandle,
    candidate: Path,
    champion: assessment.ChampionInput,
    scenarios: dict[str, Scenario],
    prepared: NormalizedBars,
    config: RetrainConfig,
) -> assessment.Assessment:
    """Evaluate candidate, champion and baselines on every scenario (held-out ones: the test window)."""
    with tempfile.TemporaryDirectory() as folder:
        result = assessment.assess(
            candidate, champion, scenarios, config, bar_minutes=prepared.bar_minutes, plots_dir=Path(folder)
        )
        for path in result.equity_plots.values():
            tracking.log_file(handle, path, "validation")
    report = {
        "candidate": result.candidate,
        "champion": result.champion,
        "champion_note": result.champion_note,
        "champion_problem": result.champion_problem,
        "baselines": result.baselines,
        "session_returns": result.session_returns,
        "scenarios": {key: list(scenario.sessions) for key, scenario in scenarios.items()},
    }
    tracking.log_json(handle, report, "validation/metrics.json")
    tracking.log_metrics(handle, tracking.numeric_leaves(result.candidate, prefix="validation"))
    get_run_logger().info("validation: %s", result.champion_note)
    return result


@task(name="decide-gate")
def decide_gate(
    handle: tracking.RunHandle,
    result: assessment.Assessment,
    cycles: list[CycleResult],
    config: RetrainConfig,
    tuning: dict[str, Any] | None = None,
) -> GateDecision:
    """Apply the gate (pure) to the candidate and, for comparison, to the signal rule; record under ``gate/``.

    ``cycles``: the night's training cycles; the kept ones are the candidates compared (their selection-window
    session returns), and all of them give the reward controller's health for the night. ``tuning``: the
    provenance of a recommended config; the study's trials count among the candidates compared.
    """
    trials = [list(cycle.selection_returns) for cycle in cycles if not cycle.rolled_back]
    health = night_health(cycles, config.training)
    health_figures = None if health is None else health.as_metrics(prefix="")
    prior_trials = 0 if tuning is None else int(tuning.get("trials") or 0)
    prior_sharpes = () if tuning is None else tuple(tuning.get("trial_sharpes") or ())
    decision = assessment.judge(
        result,
        config,
        trials=trials,
        controller_health=health_figures,
        prior_trials=prior_trials,
        prior_sharpes=prior_sharpes,
    )
    tracking.log_json(handle, decision.to_dict(), "gate/decision.json")
    statistics = decision.statistics
    deflated = statistics.get("deflated_sharpe") or {}
    gate_metrics = {
        f"gate.paired.{name}.{edge}": interval[edge]
        for name, interval in (statistics.get("paired") or {}).items()
        for edge in ("estimate", "lower", "upper")
    }
    if "probability" in deflated:
        gate_metrics["gate.deflated_sharpe"] = deflated["probability"]
    gate_metrics["gate.candidates_compared"] = float(max(1, len(trials) + prior_trials))
    if health is not None:
        gate_metrics |= health.as_metrics(prefix="night.controller_health.")
    tracking.log_metrics(handle, gate_metrics)
    if "signal_rule" in result.baselines:
        rule = assessment.judge(result, config, policy="signal_rule")
        tracking.log_json(handle, rule.to_dict(), "gate/signal_rule_decision.json")
        tracking.set_tags(handle, {"gate.signal_rule_verdict": "passed" if rule.passed else "failed"})
    tracking.set_tags(
        handle,
        {"gate.verdict": "passed" if decision.passed else "failed", "gate.champion": statistics["champion"]},
    )
    get_run_logger().info("gate %s: %s", "PASSED" if decision.passed else "REJECTED", decision.reason)
    mixed = result.candidate.get(assessment.REPLAY_SCENARIO, {})
    push_metrics(
        resolve_pushgateway(config.monitoring.pushgateway),
        job="stairways_validation",
        metrics={
            "gate_passed": float(decision.passed),
            **({} if health is None else {"controller_health": health.score}),
            **{key: value for key, value in mixed.items() if key in _PUSHED_METRICS},
        },
        labels={"model": config.registry.model_name},
    )
    return decision
