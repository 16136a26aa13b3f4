"""Prefect task: tonight's drift against the champion's training data, recorded and warned about; never fatal."""

import math

import polars as pl
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from prefect import get_run_logger, task

from market.normalize import NormalizedBars
from market.signal import SignalResult
from stairways import tracking
from stairways.config import RetrainConfig
from stairways.drift import DriftCheck, champion_reference, night_drift, signal_sample
from stairways.monitoring import push_metrics, resolve_pushgateway
from stairways.registry import PARENT_RUN_TAG
from validation.drift import drift_markdown
from validation.windows import WindowPlan

__all__ = ["check_drift"]


@task(name="check-drift")
def check_drift(
    handle: tracking.RunHandle,
    champion_version: str | None,
    prepared: NormalizedBars,
    features: pl.DataFrame,
    labels: pl.DataFrame,
    signal: SignalResult,
    plan: WindowPlan,
    config: RetrainConfig,
) -> DriftCheck:
    """Log ``drift/features.json`` and ``drift/report.md``, the ``drift.*`` metrics, warn per drifted column and
    push the figures; returns the rows (None: no champion, or it could not be compared) and what was compared.

    A drift report informs; it never stops the night: a champion whose run cannot be read is logged and skipped.
    """
    logger = get_run_logger()
    if champion_version is None:
        note = "drift not computed: no champion to compare with"
        logger.info(note)
        return DriftCheck(None, note)
    uri = handle.tracking_uri
    try:
        version = MlflowClient(tracking_uri=uri).get_model_version(
            config.registry.model_name, champion_version
        )
        run_id = (version.tags or {}).get(PARENT_RUN_TAG) or version.run_id
        reference = champion_reference(uri, run_id, bar_minutes=prepared.bar_minutes, config=config)
    except (MlflowException, OSError, ValueError) as error:
        note = f"drift not computed: the champion's training data cannot be read ({error})"
        logger.warning(note)
        return DriftCheck(None, note)
    rows = night_drift(reference, features, labels, plan, config, signal=signal_sample(signal.signal, plan))
    drifted = [row for row in rows if row.drifted]
    tracking.log_json(handle, [row.as_dict() for row in rows], "drift/features.json")
    tracking.log_text(
        handle,
        drift_markdown(
            rows, reference=f"champion version {champion_version}'s training window (run {run_id})"
        ),
        "drift/report.md",
    )
    finite = [row.psi for row in rows if math.isfinite(row.psi)]
    metrics = {"drift.columns": float(len(rows)), "drift.columns_drifted": float(len(drifted))}
    if finite:
        metrics["drift.max_psi"] = max(finite)
    tracking.log_metrics(handle, metrics)
    tracking.set_tags(handle, {"drift.champion_run": run_id})
    for row in drifted:
        logger.warning(
            "drift in %s: PSI %.3f, KS p-value %.2g against the champion's training data",
            row.column,
            row.psi,
            row.ks_pvalue,
        )
    push_metrics(
        resolve_pushgateway(config.monitoring.pushgateway),
        job="stairways_drift",
        metrics={
            "drift_columns_drifted": float(len(drifted)),
            **({"drift_max_psi": max(finite)} if finite else {}),
        },
        labels={"model": config.registry.model_name},
    )
    compared = (
        "features, labels and the signal"
        if reference.signal is not None
        else ("features and labels (the champion's run recorded no signal)")
    )
    note = f"tonight's training window against champion version {champion_version}'s ({compared})"
    return DriftCheck(tuple(rows), note)
