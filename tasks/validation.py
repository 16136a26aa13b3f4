"""Thin Prefect adapters for judging the candidate: scenarios (cached), evaluation, gate decision."""

import tempfile
from pathlib import Path

from prefect import get_run_logger, task
from prefect.tasks import exponential_backoff

from market.normalize import NormalizedBars
from market.signal import SignalResult
from stairways import assessment, tracking
from stairways.config import RetrainConfig
from stairways.monitoring import push_metrics, resolve_pushgateway
from stairways.pipeline import TrainingData
from tasks.caching import CACHE_EXPIRATION, input_digest_key
from validation.gate import GateDecision
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


@task(name="assess-candidate", retries=1, retry_delay_seconds=exponential_backoff(backoff_factor=2))
def assess_candidate(
    handle: tracking.RunHandle,
    candidate: Path,
    champion: Path | None,
    scenarios: dict[str, Scenario],
    prepared: NormalizedBars,
    config: RetrainConfig,
) -> assessment.Assessment:
    """Evaluate candidate, champion and baselines on every scenario; log metrics and equity curves."""
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
        "baselines": result.baselines,
        "scenarios": {key: list(scenario.sessions) for key, scenario in scenarios.items()},
    }
    tracking.log_json(handle, report, "validation/metrics.json")
    tracking.log_metrics(handle, tracking.numeric_leaves(result.candidate, prefix="validation"))
    get_run_logger().info("validation: %s", result.champion_note)
    return result


@task(name="decide-gate")
def decide_gate(
    handle: tracking.RunHandle, result: assessment.Assessment, config: RetrainConfig
) -> GateDecision:
    """Apply the gate criteria (pure) and record the decision under ``gate/``."""
    decision = assessment.judge(result, config)
    tracking.log_json(handle, decision.to_dict(), "gate/decision.json")
    tracking.set_tags(handle, {"gate.verdict": "passed" if decision.passed else "failed"})
    get_run_logger().info("gate %s: %s", "PASSED" if decision.passed else "REJECTED", decision.reason)
    mixed = result.candidate.get(assessment.REPLAY_SCENARIO, {})
    push_metrics(
        resolve_pushgateway(config.monitoring.pushgateway),
        job="stairways_validation",
        metrics={
            "gate_passed": float(decision.passed),
            **{key: value for key, value in mixed.items() if key in _PUSHED_METRICS},
        },
        labels={"model": config.registry.model_name},
    )
    return decision
