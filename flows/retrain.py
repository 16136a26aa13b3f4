"""The nightly retrain flow: a recipe of thin tasks, each over a plain, tested function.

data -> normalization -> QC (stop on failure) -> features -> triple-barrier labels -> window split
(train | selection | test) -> causal signal -> training cycles (picked on the selection window) ->
multi-regime validation on the test window -> gate -> registry (promotion + replay check); every step
tracked in one MLflow run. A night either promotes a new champion for a stated reason or
leaves the champion untouched for a stated reason.
"""

from pathlib import Path
from typing import Any

from prefect import flow

from stairways import tracking
from stairways.assessment import ChampionInput
from stairways.config import RetrainConfig
from stairways.pipeline import TrainingData, continue_training
from tasks.data import load_market_data, normalize_market_data, record_dataset
from tasks.features import build_feature_frame, record_features
from tasks.labels import build_labels, build_signal, plan_split, record_labels, record_signal
from tasks.qc import enforce_quality, record_quality, run_quality_checks
from tasks.registry import promote_and_replay, publish_gate_report, register_version
from tasks.tracking import tracked_run
from tasks.training import (
    assemble_training_data,
    find_warm_start,
    record_cycle,
    scratch_space,
    train_cycle,
    work_directory,
)
from tasks.validation import assess_candidate, build_validation_scenarios, decide_gate
from training.cycles import BASELINE_DIRECTORY, CycleResult, best_cycle

__all__ = ["nightly_retrain"]


@flow(name="nightly-retrain", log_prints=True)
def nightly_retrain(config: RetrainConfig = RetrainConfig()) -> dict[str, Any]:  # noqa: B008 - frozen default
    """Retrain the agent on the latest bars; stops before features when the data fails QC."""
    with scratch_space(), tracked_run(config) as run:
        market = load_market_data(config)
        prepared = normalize_market_data(market, config)
        dataset = record_dataset(run, market, prepared)
        report = run_quality_checks(prepared, config)
        record_quality(run, report, prepared)
        enforce_quality(report)
        features = build_feature_frame(prepared, config)
        feature_summary = record_features(run, features, config)
        labels = build_labels(prepared, config)
        record_labels(run, labels)
        plan = plan_split(features, config)
        signal = build_signal(features, labels, plan, config)
        record_signal(run, signal, plan)
        data = assemble_training_data(prepared, features, signal, plan, config)
        warm = find_warm_start(config)
        cycles, stop_reason, candidate = _training_cycles(run, data, warm.checkpoint, config)
        # The candidate is fixed; only now is the test window read.
        scenarios = build_validation_scenarios(data, signal, prepared, config)
        champion = ChampionInput(warm.checkpoint, warm.version, warm.reason)
        result = assess_candidate(run, candidate, champion, scenarios, prepared, config)
        decision = decide_gate(run, result, cycles, config)
        registered = register_version(run, candidate, decision, dataset["digest"], config)
        publish_gate_report(run, decision, result, registered, plan.as_dict())
        promotion = promote_and_replay(run, registered, decision, result, scenarios, config, warm.version)
    return {
        "mlflow_run_id": run.run_id,
        "tracking_uri": run.tracking_uri,
        "dataset": dataset,
        "qc": report.statistics,
        "features": feature_summary["features"],
        "windows": plan.as_dict(),
        "signal_cv": signal.cv_scores.get("mean", {}),
        "cycles": [
            {"cycle": c.cycle, "score": c.evaluation["score"], "rolled_back": c.rolled_back} for c in cycles
        ],
        "training_stop": stop_reason,
        "warm_start": warm.reason,
        "gate": {
            "passed": decision.passed,
            "reason": decision.reason,
            "champion": decision.statistics.get("champion"),
            "deflated_sharpe": (decision.statistics.get("deflated_sharpe") or {}).get("probability"),
            "controller_health": (decision.statistics.get("controller_health") or {}).get("score"),
            "paired": decision.statistics.get("paired", {}),
        },
        "registered_version": registered.version,
        "promoted": promotion.promoted,
        "champion": promotion.champion,
        "champion_reason": promotion.reason,
    }


def _training_cycles(
    run: tracking.RunHandle, data: TrainingData, warm_start: Path | None, config: RetrainConfig
) -> tuple[list[CycleResult], str, Path]:
    """Cycle 1 warm-starts from the champion; each cycle is its own retryable, per-run cached task.

    Returns the cycles, why training stopped, and the candidate: the best kept cycle's checkpoint (the
    starting weights when every cycle was rolled back).
    """
    output_dir = work_directory()
    previous, baseline = warm_start, None
    results: list[CycleResult] = []
    go_on, reason = True, ""
    while go_on:
        cycle = len(results) + 1
        result = train_cycle(
            cycle,
            data.train,
            data.selection,
            config,
            previous=previous,
            baseline=baseline,
            output_dir=output_dir,
        )
        record_cycle(run, result, config)
        results.append(result)
        previous, baseline = result.checkpoint, output_dir / BASELINE_DIRECTORY
        go_on, reason = continue_training(results, config)
    best = best_cycle(results, trades_band=config.training.selection_trades_band)
    return results, reason, output_dir / BASELINE_DIRECTORY if best is None else best.checkpoint
