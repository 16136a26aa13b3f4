"""MLflow lineage for one flow run: the parent run, its tags, and artifacts under stable paths.

Everything goes through an explicit run id and ``MlflowClient`` so that logging works from any thread a task
runs in, and nothing here touches MLflow's global active-run stack.
"""

import json
import math
import os
import re
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import mlflow.data
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.http_dataset_source import HTTPDatasetSource
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

__all__ = [
    "ABANDONED_TAG",
    "DEFAULT_TRACKING_URI",
    "RunHandle",
    "end_run",
    "fail_abandoned_runs",
    "git_sha",
    "log_dataset_input",
    "log_file",
    "log_frame",
    "log_json",
    "log_metrics",
    "log_params",
    "log_text",
    "metric_key",
    "numeric_leaves",
    "resolve_tracking_uri",
    "run_url",
    "set_tags",
    "start_child_run",
    "start_run",
]

HOST_TAG = "stairways.host"
PID_TAG = "stairways.pid"
ABANDONED_TAG = "stairways.abandoned"

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
_MAX_PARAM_LENGTH = 6000


@dataclass(frozen=True)
class RunHandle:
    """Where a flow run's lineage lives: the tracking store and the MLflow run id."""

    tracking_uri: str
    run_id: str
    experiment_id: str

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.tracking_uri)


def resolve_tracking_uri(configured: str | None) -> str:
    """``MLFLOW_TRACKING_URI`` wins, then the configured URI, then SQLite in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or DEFAULT_TRACKING_URI


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """The run's page in the MLflow UI for a tracking server; ``runs:/<id>`` for a local store (no UI URL)."""
    base = tracking_uri.rstrip("/")
    if base.startswith(("http://", "https://")):
        return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"
    return f"runs:/{run_id}"


def git_sha(directory: Path | None = None) -> str:
    """The commit the code runs from: git, else ``STAIRWAYS_GIT_SHA`` (set in the image), else ``"unknown"``."""
    here = directory or Path(__file__).resolve().parent
    fallback = os.environ.get("STAIRWAYS_GIT_SHA") or "unknown"
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return fallback
    return completed.stdout.strip() or fallback


def start_run(
    *,
    tracking_uri: str,
    experiment_name: str,
    run_name: str,
    tags: Mapping[str, str],
) -> RunHandle:
    """Create (or reuse) the experiment and open a new parent run with ``tags``."""
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    experiment_id = (
        experiment.experiment_id if experiment is not None else client.create_experiment(experiment_name)
    )
    owner = {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
    run = client.create_run(experiment_id, run_name=run_name, tags={**dict(tags), **owner})
    return RunHandle(tracking_uri=tracking_uri, run_id=run.info.run_id, experiment_id=experiment_id)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def fail_abandoned_runs(
    *, tracking_uri: str, experiment_name: str, max_age_hours: float, now_ms: int | None = None
) -> list[tuple[str, str]]:
    """Mark FAILED the parent runs of earlier nights left RUNNING by a killed process, and their nested runs.

    A run is abandoned when its process (``stairways.host``/``stairways.pid`` tags) is gone from this host,
    or when it started more than ``max_age_hours`` ago (no night runs that long; this also covers another
    host's runs, runs without those tags, and a pid reused by a live process). A live night, here or elsewhere, is never touched. Returns ``(run id, reason)``
    per run marked; each also gets the tag ``stairways.abandoned`` with the reason.
    """
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return []
    running = client.search_runs(
        [experiment.experiment_id], "attributes.status = 'RUNNING'", max_results=1000
    )
    now = int(time.time() * 1000) if now_ms is None else now_ms
    host = socket.gethostname()
    abandoned: dict[str, str] = {}
    for run in running:
        tags = run.data.tags
        if "mlflow.parentRunId" in tags:
            continue
        pid = tags.get(PID_TAG)
        age_hours = (now - run.info.start_time) / 3_600_000
        here = tags.get(HOST_TAG) == host and pid is not None and pid.isdigit()
        if here and not _process_alive(int(pid)):  # type: ignore[arg-type]
            abandoned[run.info.run_id] = f"its process {pid} on {host} is gone (killed or crashed)"
        elif age_hours > max_age_hours:
            # also here: a live process under a reused pid is not the night that opened the run
            abandoned[run.info.run_id] = (
                f"RUNNING for {age_hours:.1f} h, longer than any night ({max_age_hours:g} h)"
            )
    for run in running:
        parent = run.data.tags.get("mlflow.parentRunId")
        if parent in abandoned and run.info.run_id not in abandoned:
            abandoned[run.info.run_id] = f"its parent run {parent} was abandoned"
    for run_id, reason in abandoned.items():
        client.set_tag(run_id, ABANDONED_TAG, reason)
        client.set_terminated(run_id, "FAILED")
    return list(abandoned.items())


def start_child_run(parent: RunHandle, *, run_name: str, tags: Mapping[str, str] | None = None) -> RunHandle:
    """Open a run nested under ``parent`` (MLflow shows it beneath the parent run)."""
    client = parent.client()
    child_tags = {"mlflow.parentRunId": parent.run_id, **(tags or {})}
    run = client.create_run(parent.experiment_id, run_name=run_name, tags=child_tags)
    return RunHandle(
        tracking_uri=parent.tracking_uri, run_id=run.info.run_id, experiment_id=parent.experiment_id
    )


def numeric_leaves(values: Mapping[str, Any], *, prefix: str = "") -> dict[str, float]:
    """The numeric leaves of a nested report as flat ``a.b.c`` keys (booleans and lists left out)."""
    flat: dict[str, float] = {}
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(numeric_leaves(value, prefix=name))
        elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            flat[name] = float(value)
    return flat


def end_run(handle: RunHandle, *, status: str) -> None:
    """Close the run as ``FINISHED``, ``FAILED`` or ``KILLED``."""
    handle.client().set_terminated(handle.run_id, status=status)


def set_tags(handle: RunHandle, tags: Mapping[str, Any]) -> None:
    """Set several tags at once."""
    handle.client().log_batch(handle.run_id, tags=[RunTag(key, str(value)) for key, value in tags.items()])


def log_params(handle: RunHandle, params: Mapping[str, Any]) -> None:
    """Log flat parameters (values longer than MLflow's limit are truncated; the full config is an artifact)."""
    items = [Param(key, str(value)[:_MAX_PARAM_LENGTH]) for key, value in params.items()]
    client = handle.client()
    for start in range(0, len(items), 100):
        client.log_batch(handle.run_id, params=items[start : start + 100])


def log_metrics(handle: RunHandle, metrics: Mapping[str, float], *, step: int = 0) -> None:
    """Log several metrics at one step."""
    timestamp = mlflow.utils.time.get_current_time_millis()
    items = [Metric(metric_key(key), float(value), timestamp, step) for key, value in metrics.items()]
    client = handle.client()
    for start in range(0, len(items), 500):
        client.log_batch(handle.run_id, metrics=items[start : start + 500])


def log_metric_series(
    handle: RunHandle, series: Sequence[tuple[str, Sequence[float], Sequence[int]]]
) -> None:
    """Log curves, ``(name, values, steps)`` each (a curve in the MLflow UI), in as few batches as MLflow
    allows (1,000 metrics a request); NaN values are skipped."""
    timestamp = mlflow.utils.time.get_current_time_millis()
    items = [
        Metric(metric_key(name), float(value), timestamp, int(step))
        for name, values, steps in series
        for value, step in zip(values, steps, strict=True)
        if not math.isnan(value)
    ]
    client = handle.client()
    for start in range(0, len(items), 1000):
        client.log_batch(handle.run_id, metrics=items[start : start + 1000])


def metric_key(name: str) -> str:
    """An MLflow-legal key: ``repairs.unaligned_dropped[NVDA]`` becomes ``repairs.unaligned_dropped.NVDA``."""
    return re.sub(r"[^\w\-. :/]", "_", re.sub(r"\[([^\]]*)\]", r".\1", name))


def log_text(handle: RunHandle, text: str, artifact_file: str) -> None:
    """Write ``text`` as the artifact ``artifact_file`` (a stable path such as ``qc/report.md``)."""
    handle.client().log_text(handle.run_id, text, artifact_file)


def log_json(handle: RunHandle, value: Any, artifact_file: str) -> None:
    """Write ``value`` as pretty JSON to the artifact ``artifact_file``."""
    log_text(handle, json.dumps(value, indent=2, sort_keys=True, default=str), artifact_file)


def log_file(handle: RunHandle, path: Path, artifact_path: str) -> None:
    """Copy a local file into the run's artifacts under ``artifact_path``."""
    handle.client().log_artifact(handle.run_id, str(path), artifact_path)


def _dataset_source(handle: RunHandle, artifact_file: str) -> Any | None:
    """A resolvable MLflow dataset source for a run artifact: its local path, or its HTTP download URL."""
    uri = f"{handle.client().get_run(handle.run_id).info.artifact_uri}/{artifact_file}"
    try:
        return resolve_dataset_source(uri)
    except MlflowException:
        pass
    server = handle.tracking_uri.rstrip("/")
    prefix = "mlflow-artifacts:/"
    if uri.startswith(prefix) and server.startswith(("http://", "https://")):
        return HTTPDatasetSource(
            f"{server}/api/2.0/mlflow-artifacts/artifacts/{uri[len(prefix) :].lstrip('/')}"
        )
    return None


def log_dataset_input(handle: RunHandle, frame: Any, *, name: str, artifact_file: str, digest: str) -> bool:
    """Record ``frame``, logged as the artifact ``artifact_file``, as the run's training input.

    The MLflow UI then lists it under Datasets, with the artifact as its source and ``digest`` (truncated to
    MLflow's 36 characters) as its digest. Returns False, logging nothing, for an artifact store whose URIs
    MLflow cannot describe as a dataset source (the artifact and ``data/dataset.json`` still hold the record).
    """
    source = _dataset_source(handle, artifact_file)
    if source is None:
        return False
    dataset = mlflow.data.from_polars(frame, source=source, name=name, digest=digest[:36])
    entity = DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", "training")])
    handle.client().log_inputs(handle.run_id, datasets=[entity])
    return True


def log_frame(handle: RunHandle, frame: Any, artifact_file: str) -> None:
    """Write a polars frame as Parquet to the artifact ``artifact_file``."""
    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / Path(artifact_file).name
        frame.write_parquet(local)
        log_file(handle, local, str(Path(artifact_file).parent))
