"""The nightly retrain flow: a recipe of thin tasks, each over a plain, tested function.

This issue's part of the night: data -> normalization -> QC (stop on failure) -> features, all tracked in MLflow.
"""

from typing import Any

from prefect import flow

from stairways.config import RetrainConfig
from tasks.data import load_market_data, normalize_market_data, record_dataset
from tasks.features import build_feature_frame, record_features
from tasks.qc import enforce_quality, run_quality_checks
from tasks.tracking import tracked_run

__all__ = ["nightly_retrain"]


@flow(name="nightly-retrain", log_prints=True)
def nightly_retrain(config: RetrainConfig = RetrainConfig()) -> dict[str, Any]:  # noqa: B008 - frozen default
    """Retrain the agent on the latest bars; stops before features when the data fails QC."""
    with tracked_run(config) as run:
        market = load_market_data(config)
        prepared = normalize_market_data(market, config)
        dataset = record_dataset(run, market, prepared)
        report = run_quality_checks(prepared, config)
        enforce_quality(run, report, prepared)
        features = build_feature_frame(prepared, config)
        summary = record_features(run, features, config)
    return {
        "mlflow_run_id": run.run_id,
        "tracking_uri": run.tracking_uri,
        "dataset": dataset,
        "qc": report.statistics,
        "features": summary["features"],
        "feature_rows": features.height,
    }
