"""Thin Prefect adapters for the feature stage: build (cached) and record the feature list and statistics."""

import polars as pl
from prefect import task

from market.normalize import NormalizedBars
from stairways import pipeline, tracking
from stairways.config import RetrainConfig
from tasks.caching import CACHE_EXPIRATION, input_digest_key
from tasks.retrying import IO_RETRIES

__all__ = ["build_feature_frame", "record_features"]


@task(
    name="build-features",
    cache_key_fn=input_digest_key,
    cache_expiration=CACHE_EXPIRATION,
    persist_result=True,
)
def build_feature_frame(prepared: NormalizedBars, config: RetrainConfig) -> pl.DataFrame:
    """Build the configured feature sets; warm-up rows are dropped."""
    return pipeline.features_for(prepared, config)


@task(name="record-features", **IO_RETRIES)
def record_features(handle: tracking.RunHandle, features: pl.DataFrame, config: RetrainConfig) -> dict:
    """Log the feature list and per-symbol summary statistics under ``features/``."""
    summary = pipeline.feature_summary(features, config)
    tracking.log_json(handle, summary, "features/summary.json")
    tracking.log_metrics(
        handle, {"features.count": len(summary["features"]), "features.rows": features.height}
    )
    return summary
