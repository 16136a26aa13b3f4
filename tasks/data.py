"""Thin Prefect adapters for the data stage: load (I/O, retried), normalize (cached), record lineage."""

from prefect import get_run_logger, task

from market.normalize import NormalizedBars
from stairways import pipeline, tracking
from stairways.config import RetrainConfig
from tasks.caching import CACHE_EXPIRATION, input_digest_key
from tasks.retrying import IO_RETRIES

__all__ = ["load_market_data", "normalize_market_data", "record_dataset"]


@task(name="load-market-data", **IO_RETRIES)
def load_market_data(config: RetrainConfig) -> pipeline.MarketData:
    """Read the export files or generate the synthetic market."""
    market = pipeline.load_market(config)
    get_run_logger().info("loaded %d rows from %s", market.bars.height, market.source)
    return market


@task(
    name="normalize-bars",
    cache_key_fn=input_digest_key,
    cache_expiration=CACHE_EXPIRATION,
    persist_result=True,
)
def normalize_market_data(market: pipeline.MarketData, config: RetrainConfig) -> NormalizedBars:
    """Canonical, session-filtered, aligned bars; every repair counted."""
    prepared = pipeline.prepare_bars(market.bars, config)
    logger = get_run_logger()
    for line in prepared.repair_lines():
        logger.info("repair: %s", line)
    return prepared


@task(name="record-dataset", **IO_RETRIES)
def record_dataset(handle: tracking.RunHandle, market: pipeline.MarketData, prepared: NormalizedBars) -> dict:
    """Log the dataset record, repair counts and the normalized bars under ``data/``."""
    record = pipeline.dataset_record(prepared, source=market.source)
    tracking.log_json(handle, record, "data/dataset.json")
    tracking.set_tags(handle, {"data.digest": record["digest"], "data.rows": record["rows"]})
    tracking.log_metrics(handle, {f"repairs.{key}": value for key, value in prepared.repairs.items()})
    tracking.log_frame(handle, prepared.bars, "data/bars.parquet")
    tracking.log_dataset_input(
        handle, prepared.bars, name="bars", artifact_file="data/bars.parquet", digest=record["digest"]
    )
    if market.regimes is not None:
        tracking.log_frame(handle, market.regimes, "data/regimes.parquet")
    return record
