"""Thin Prefect adapters over ``stairways.tracking``: open and close the MLflow parent run of a flow run."""

from collections.abc import Iterator
from contextlib import contextmanager

from prefect import get_run_logger, task
from prefect.runtime import flow_run

from stairways import tracking
from stairways.config import RetrainConfig
from stairways.digest import model_digest
from tasks.retrying import IO_RETRIES

__all__ = ["close_tracking_run", "open_tracking_run", "tracked_run"]


@task(name="open-tracking-run", **IO_RETRIES)
def open_tracking_run(config: RetrainConfig) -> tracking.RunHandle:
    """Open the MLflow parent run, tag it with lineage and log the resolved config."""
    flow_run_id = str(flow_run.get_id() or "local")
    flow_run_name = str(flow_run.get_name() or "local")
    tags = {
        "prefect.flow_run_id": flow_run_id,
        "prefect.flow_run_name": flow_run_name,
        "git_sha": tracking.git_sha(),
        "config_hash": model_digest(config),
        "seed": str(config.seed),
        "symbols": ",".join(config.symbols),
        "data.source": config.data.source,
    }
    handle = tracking.start_run(
        tracking_uri=tracking.resolve_tracking_uri(config.tracking.tracking_uri),
        experiment_name=config.tracking.experiment_name,
        run_name=f"retrain-{flow_run_name}",
        tags=tags,
    )
    try:
        tracking.log_json(handle, config.model_dump(mode="json"), "config/config.json")
        tracking.log_params(handle, _flatten(config.model_dump(mode="json")))
    except BaseException:
        # A retry opens a new run: this one must not stay RUNNING (a read-only or full artifact store).
        tracking.end_run(handle, status="FAILED")
        raise
    get_run_logger().info("MLflow run %s in %s", handle.run_id, handle.tracking_uri)
    return handle


@task(name="close-tracking-run", **IO_RETRIES)
def close_tracking_run(handle: tracking.RunHandle, *, status: str) -> None:
    """Mark the parent run finished or failed."""
    tracking.end_run(handle, status=status)


@contextmanager
def tracked_run(config: RetrainConfig) -> Iterator[tracking.RunHandle]:
    """Open the parent run; close it FINISHED, or FAILED when the flow body raises."""
    handle = open_tracking_run(config)
    try:
        yield handle
    except BaseException:
        close_tracking_run(handle, status="FAILED")
        raise
    close_tracking_run(handle, status="FINISHED")


def _flatten(values: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
