"""Thin Prefect adapters for the labeling stage: labels, the window split and the causal signal."""

import tempfile
from pathlib import Path

import polars as pl
from prefect import get_run_logger, task

from market.labeling import label_report, plot_label_report
from market.normalize import NormalizedBars
from market.signal import SignalResult, plot_calibration
from stairways import pipeline, tracking
from stairways.config import RetrainConfig
from stairways.drift import SIGNAL_ARTIFACT, signal_sample
from tasks.caching import CACHE_EXPIRATION, input_digest_key
from tasks.retrying import IO_RETRIES
from validation.windows import WindowPlan

__all__ = ["build_labels", "build_signal", "plan_split", "record_labels", "record_signal"]

_CACHED = {"cache_key_fn": input_digest_key, "cache_expiration": CACHE_EXPIRATION, "persist_result": True}


@task(name="build-labels", **_CACHED)
def build_labels(prepared: NormalizedBars, config: RetrainConfig) -> pl.DataFrame:
    """Triple-barrier labels at every configured horizon."""
    return pipeline.labels_for(prepared, config)


@task(name="record-labels", **IO_RETRIES)
def record_labels(handle: tracking.RunHandle, labels: pl.DataFrame) -> dict:
    """Log the label report (JSON and PNG) under ``labels/``."""
    report = label_report(labels)
    tracking.log_json(handle, report, "labels/report.json")
    with tempfile.TemporaryDirectory() as folder:
        tracking.log_file(handle, plot_label_report(labels, Path(folder) / "report.png"), "labels")
    return report


@task(name="plan-windows")
def plan_split(features: pl.DataFrame, config: RetrainConfig) -> WindowPlan:
    """Decide the training, selection and test windows and the purge gaps between them."""
    plan = pipeline.split_windows(features, config)
    get_run_logger().info("windows: %s", plan.as_dict())
    return plan


@task(name="build-signal", **_CACHED)
def build_signal(
    features: pl.DataFrame, labels: pl.DataFrame, plan: WindowPlan, config: RetrainConfig
) -> SignalResult:
    """Fit the walk-forward signal models; each row's value (from the past only) is an observation feature."""
    return pipeline.signal_for(features, labels, plan, config)


@task(name="record-signal", **IO_RETRIES)
def record_signal(handle: tracking.RunHandle, signal: SignalResult, plan: WindowPlan) -> None:
    """Log CV scores, calibration (JSON and PNG), the meta-label report and the window plan under ``labels/``,
    and the training window's signal values for a later night's drift check (:data:`SIGNAL_ARTIFACT`)."""
    tracking.log_json(handle, plan.as_dict(), "labels/windows.json")
    tracking.set_tags(handle, {f"window.{key}": str(value) for key, value in plan.as_dict().items()})
    tracking.log_json(handle, signal.cv_scores, "labels/signal_cv.json")
    tracking.log_json(handle, signal.calibration, "labels/signal_calibration.json")
    tracking.log_json(handle, signal.meta_report, "labels/meta_report.json")
    tracking.log_frame(handle, signal_sample(signal.signal, plan), SIGNAL_ARTIFACT)
    with tempfile.TemporaryDirectory() as folder:
        tracking.log_file(handle, plot_calibration(signal, Path(folder) / "signal_calibration.png"), "labels")
    metrics = tracking.numeric_leaves(signal.cv_scores.get("mean", {}), prefix="signal.cv")
    metrics |= tracking.numeric_leaves(signal.meta_report.get("pooled", {}), prefix="signal.meta")
    tracking.log_metrics(handle, metrics)
