"""Prefect task: tonight's drift against the champion's training data, recorded and warned about; never fatal."""

import math

import polars as pl
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from prefect import get_run_logger, task

from market.normalize import NormalizedBars
from stairways import tracking
from stairways.config import RetrainConfig
from stairways.drift import champion_reference, night_drift
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
    plan: WindowPlan,
    config: RetrainConfig,
) -> int | None:
    """Log ``drift/features.json`` and ``drift/report.md``, the ``drift.*`` metrics, warn per drifted column and
    push the figures; returns how many columns drifted (None: no champion, or it could not be compared).

    A drift report informs; it never stops the night: a champion whose run cannot be read is logged and skipped.
    """
    logger = get_run_logger()
    if champion_version is None:
        logger.info("drift not computed: no champion to compare with")
        return None
    uri = handle.tracking_uri
    try:
        version = MlflowClient(tracking_uri=uri).get_model_version(
            config.registry.model_name, champion_version
        )
        run_id = (version.tags or {}).get(PARENT_RUN_TAG) or version.run_id
        reference = champion_reference(uri, run_id, bar_minutes=prepared.bar_minutes, config=config)
    except (MlflowException, OSError, ValueError) as error:
        logger.warning("drift not computed: the champion's training data cannot be read (%s)", error)
        return None
    rows = night_drift(reference, features, labels, plan, config)
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
    return len(drifted)
