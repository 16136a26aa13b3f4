"""The nightly retrain flow: a recipe of thin tasks, each over a plain, tested function.

data -> normalization -> QC (stop on failure) -> features -> triple-barrier labels -> window split
(train | selection | test) -> causal signal -> training cycles (picked on the selection window) ->
multi-regime validation on the test window -> gate -> registry (promotion + replay check) -> the night
report (one HTML page); every step tracked in one MLflow run. A night either promotes a new champion for a stated reason or
leaves the champion untouched for a stated reason.
"""

from typing import Any

from prefect import flow

from stairways.assessment import ChampionInput
from stairways.config import RetrainConfig
from tasks.calendar import check_trading_day
from tasks.data import load_market_data, normalize_market_data, record_dataset
from tasks.drift import check_drift
from tasks.features import build_feature_frame, record_features
from tasks.labels import build_labels, build_signal, plan_split, record_labels, record_signal
from tasks.qc import enforce_quality, record_quality, run_quality_checks
from tasks.registry import promote_and_replay, publish_gate_report, register_version
from tasks.report import publish_night_report
from tasks.tracking import tracked_run
from tasks.training import (
    assemble_training_data,
    find_warm_start,
    record_controller,
    record_cycle,
    scratch_space,
    train_cycle,
    work_directory,
)
from tasks.tuning import apply_tuned_config, record_tuning
from tasks.validation import assess_candidate, build_validation_scenarios, decide_gate
from training.cycles import run_cycles

__all__ = ["nightly_retrain"]


@flow(name="nightly-retrain", log_prints=True)
def nightly_retrain(config: RetrainConfig = RetrainConfig()) -> dict[str, Any]:  # noqa: B008 - frozen default
    """Retrain the agent on the latest bars; stops before features when the data fails QC.

    A scheduled run on a day the exchange is closed ends at once (Completed, ``skipped``); manual runs always run.
    """
    night = check_trading_day()
    if not night.runs:
        return night.skipped_result()
    tuning: dict[str, Any] | None = None
    if config.tuning.use_recommended:
        config, tuning = apply_tuned_config(config)
    with scratch_space(), tracked_run(config) as run:
        if tuning is not None:
            record_tuning(run, tuning)
        market = load_market_data(config)
        prepared = normalize_market_data(market, config)
        dataset = record_dataset(run, market, prepared)
        report = run_quality_checks(prepared, config)
        record_quality(run, report, prepared)
        enforce_quality(report)
        features = build_feature_frame(prepared, config)
        feature_summary = record_features(run, features, config)
        labels = build_labels(prepared, config)
        label_summary = record_labels(run, labels)
        plan = plan_split(features, config)
        signal = build_signal(features, labels, plan, config)
        record_signal(run, signal, plan)
        data = assemble_training_data(prepared, features, signal, plan, config)
        warm = find_warm_start(config)
        drift = check_drift(run, warm.version, prepared, features, labels, signal, plan, config)
        training = run_cycles(
            train=data.train,
            selection=data.selection,
            config=config.training,
            seed=config.seed,
            output_dir=work_directory(),
            warm_start=warm.checkpoint,
            on_cycle=lambda result: record_cycle(run, result, config),
            run_one=train_cycle,  # each cycle is its own retryable, per-run cached task
        )
        record_controller(run, training, config)
        candidate = training.best_checkpoint
        # The candidate is fixed; only now is the test window read.
        scenarios = build_validation_scenarios(data, signal, prepared, config)
        champion = ChampionInput(warm.checkpoint, warm.version, warm.reason)
        result = assess_candidate(run, candidate, champion, scenarios, prepared, config)
        decision = decide_gate(run, result, training.cycles, config, tuning=tuning)
        registered = register_version(
            run, candidate, decision, dataset["digest"], config, champion_version=warm.version, result=result
        )
        publish_gate_report(run, decision, result, registered, plan.as_dict())
        promotion = promote_and_replay(run, registered, decision, result, scenarios, config, warm.version)
        report_link = publish_night_report(
            run,
            symbols=config.symbols,
            dataset=dataset,
            quality=report,
            label_summary=label_summary,
            windows=plan.as_dict(),
            training=training,
            decision=decision,
            result=result,
            registered=registered,
            promotion=promotion,
            drift=drift,
        )
    return {
        "mlflow_run_id": run.run_id,
        "tracking_uri": run.tracking_uri,
        "dataset": dataset,
        "qc": report.statistics,
        "features": feature_summary["features"],
        "windows": plan.as_dict(),
        "signal_cv": signal.cv_scores.get("mean", {}),
        "cycles": [
            {"cycle": c.cycle, "score": c.evaluation["score"], "rolled_back": c.rolled_back}
            for c in training.cycles
        ],
        "training_stop": training.reason,
        "warm_start": warm.reason,
        "tuning": None if tuning is None else {key: tuning[key] for key in ("study", "trial", "trials")},
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
        "report": report_link,
    }
