"""Thin Prefect adapters over ``stairways.tracking``: open and close the MLflow parent run of a flow run."""

from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

from mlflow.tracking import MlflowClient
from prefect import get_client, get_run_logger, task
from prefect.artifacts import create_link_artifact
from prefect.exceptions import ObjectNotFound
from prefect.runtime import flow_run
from prefect.states import Crashed

from core.digest import model_digest
from stairways import tracking
from stairways.config import RetrainConfig
from tasks.retrying import IO_RETRIES

__all__ = ["close_tracking_run", "flow_run_ui_url", "open_tracking_run", "tracked_run"]


def flow_run_ui_url() -> str | None:
    """This flow run's page in the Prefect UI; None without a UI (the local ephemeral API has no lasting one,
    and Prefect then builds ``"None/flow-runs/..."``)."""
    url = flow_run.ui_url
    return url if isinstance(url, str) and url.startswith(("http://", "https://")) else None


@task(name="open-tracking-run", **IO_RETRIES)
def open_tracking_run(config: RetrainConfig) -> tracking.RunHandle:
    """Open the MLflow parent run, tag it with lineage and log the resolved config."""
    flow_run_id = str(flow_run.get_id() or "local")
    flow_run_name = str(flow_run.get_name() or "local")
    sha = tracking.git_sha()
    prefect_url = flow_run_ui_url()
    # A markdown link: MLflow renders the description, so the run page links back to the flow run.
    where = (
        f"[Prefect flow run]({prefect_url}): {prefect_url}"
        if prefect_url
        else "run with Prefect's local ephemeral API (no UI)"
    )
    tags = {
        "prefect.flow_run_id": flow_run_id,
        "prefect.flow_run_name": flow_run_name,
        "prefect.flow_run_url": prefect_url or "-",
        # MLflow's own source tags: the UI shows the commit and entry point in the run's Source field.
        "mlflow.source.git.commit": sha,
        "mlflow.source.name": "flows/retrain.py:nightly_retrain",
        "mlflow.source.type": "JOB",
        "mlflow.note.content": f"Nightly retrain `{flow_run_name}` ({flow_run_id}). {where}",
        "git_sha": sha,
        "config_hash": model_digest(config),
        "seed": str(config.seed),
        "symbols": ",".join(config.symbols),
        "data.source": config.data.source,
    }
    uri = tracking.resolve_tracking_uri(config.tracking.tracking_uri)
    _clean_up_abandoned(uri, config)
    handle = tracking.start_run(
        tracking_uri=uri,
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
    url = tracking.run_url(handle.tracking_uri, handle.experiment_id, handle.run_id)
    get_run_logger().info("MLflow run %s (store %s)", url, handle.tracking_uri)
    if url.startswith(("http://", "https://")):
        create_link_artifact(key="mlflow-run", link=url, link_text=f"MLflow run {handle.run_id}")
    return handle


def _clean_up_abandoned(tracking_uri: str, config: RetrainConfig) -> None:
    """Earlier nights killed mid-run: their MLflow runs become FAILED, their Prefect flow runs CRASHED."""
    logger = get_run_logger()
    abandoned = tracking.fail_abandoned_runs(
        tracking_uri=tracking_uri,
        experiment_name=config.tracking.experiment_name,
        max_age_hours=config.tracking.max_night_hours,
    )
    client = MlflowClient(tracking_uri=tracking_uri)
    for run_id, reason in abandoned:
        logger.warning("MLflow run %s marked FAILED: %s", run_id, reason)
        flow_run_id = client.get_run(run_id).data.tags.get("prefect.flow_run_id")
        # A retry of the same flow run finds its own killed attempt: that flow run is this one, alive.
        if flow_run_id and flow_run_id not in ("local", str(flow_run.get_id() or "local")):
            _crash_flow_run(flow_run_id, reason)


def _crash_flow_run(flow_run_id: str, reason: str) -> None:
    """Mark a Prefect flow run that is still RUNNING as CRASHED (it frees its deployment's concurrency slot)."""
    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(UUID(flow_run_id))
        except (ObjectNotFound, ValueError):
            return
        if run.state is not None and run.state.is_running():
            client.set_flow_run_state(run.id, Crashed(message=f"abandoned: {reason}"), force=True)
            get_run_logger().warning("Prefect flow run %s marked CRASHED: %s", flow_run_id, reason)


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
