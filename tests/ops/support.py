"""Helpers of the ops tests: small flow parameters, Prefect and MLflow look-ups against a running stack."""

import asyncio
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Run
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.client.schemas.objects import FlowRun

from stairways.config import RetrainConfig

REPO = Path(__file__).resolve().parents[2]
TEST_ARTIFACTS = REPO / "test-artifacts" / "ops"

# A run of a few seconds: 8 synthetic sessions, one 512-step cycle.
SMALL_CONFIG: dict[str, Any] = {
    "data": {"synthetic": {"sessions": 8}},
    "window": {"selection_sessions": 2, "test_sessions": 2, "min_train_sessions": 3},
    "training": {"cycles": 1, "steps_per_cycle": 512, "progress_bar": False},
}
SMALL_PARAMETERS: dict[str, Any] = {"config": SMALL_CONFIG}
# The same run with a gate any finite result passes: with no champion yet, its candidate is promoted.
LENIENT_GATE: dict[str, Any] = {
    "min_total_return_pct": -100.0,
    "max_drawdown_pct": 100.0,
    "min_trades_per_day": 0.0,
    "max_trades_per_day": 1_000_000.0,
    "min_sharpe": -1e9,
    "min_win_rate": 0.0,
    "min_ratio_episodes": 1,
    "paired_baselines": [],
}
PROMOTABLE_PARAMETERS: dict[str, Any] = {"config": {**SMALL_CONFIG, "gate": LENIENT_GATE}}
MODEL_NAME = RetrainConfig.model_validate(SMALL_CONFIG).registry.model_name
EXPERIMENT_NAME = RetrainConfig.model_validate(SMALL_CONFIG).tracking.experiment_name
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
# The per-run Prefect markdown artifact: "gate-report" once the gate stage lands, "qc-report" until then.
REPORT_ARTIFACT_KEYS = ("gate-report", "qc-report")


def run(coroutine: Any) -> Any:
    """Run a coroutine from a synchronous test."""
    return asyncio.run(coroutine)


async def wait_for_final_states(
    client: PrefectClient, flow_run_ids: Iterable[uuid.UUID], *, timeout: float
) -> dict[uuid.UUID, FlowRun]:
    """Poll until every flow run is COMPLETED, FAILED, CANCELLED or CRASHED; raise after ``timeout`` s."""
    pending = set(flow_run_ids)
    final: dict[uuid.UUID, FlowRun] = {}
    deadline = time.monotonic() + timeout
    while pending:
        for flow_run_id in list(pending):
            flow_run = await client.read_flow_run(flow_run_id)
            if flow_run.state is not None and flow_run.state.type.value in FINAL_STATES:
                final[flow_run_id] = flow_run
                pending.discard(flow_run_id)
        if pending:
            if time.monotonic() > deadline:
                states = {str(i): (await client.read_flow_run(i)).state for i in pending}
                msg = f"flow runs not finished after {timeout:.0f} s: {states}"
                raise TimeoutError(msg)
            await asyncio.sleep(1.0)
    return final


async def report_artifact_keys(client: PrefectClient, flow_run_id: uuid.UUID) -> set[str]:
    """Keys of the Prefect artifacts a flow run created."""
    artifacts = await client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
    )
    return {artifact.key for artifact in artifacts if artifact.key}


def parent_runs(mlflow: MlflowClient, flow_run_id: uuid.UUID | str) -> list[Run]:
    """MLflow parent runs tagged with the Prefect flow run (nested cycle runs excluded)."""
    experiment = mlflow.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment is None:
        return []
    runs = mlflow.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`prefect.flow_run_id` = '{flow_run_id}'",
        max_results=50,
    )
    return [found for found in runs if "mlflow.parentRunId" not in found.data.tags]


def artifact_paths(mlflow: MlflowClient, run_id: str, path: str = "") -> set[str]:
    """Every artifact file of a run, listed through the tracking server."""
    found: set[str] = set()
    for item in mlflow.list_artifacts(run_id, path):
        found |= artifact_paths(mlflow, run_id, item.path) if item.is_dir else {item.path}
    return found


def versions_of_run(mlflow: MlflowClient, run_id: str) -> list[ModelVersion]:
    """Model versions of the registered model that came from the MLflow run ``run_id``."""
    try:
        versions = mlflow.search_model_versions(f"name = '{MODEL_NAME}'")
    except Exception:  # noqa: BLE001 - no registered model yet
        return []
    return [
        version
        for version in versions
        if version.run_id == run_id or (version.tags or {}).get("parent_run_id") == run_id
    ]


def registry_outcome(summary: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """What the flow summary says about the registry (``registered_version``, ``promoted``, ``champion``).

    None when the flow registered nothing (a flow without a registry stage, or a run stopped before it).
    """
    if not summary or summary.get("registered_version") is None:
        return None
    return {
        "version": str(summary["registered_version"]),
        "promoted": bool(summary.get("promoted")),
        "champion": None if summary.get("champion") is None else str(summary["champion"]),
        "gate_passed": bool((summary.get("gate") or {}).get("passed")),
    }


def alias_version(mlflow: MlflowClient, alias: str) -> str | None:
    """The version the alias names on the registered model, or None."""
    try:
        return mlflow.get_model_version_by_alias(MODEL_NAME, alias).version
    except MlflowException:
        return None


def check_registry(mlflow: MlflowClient, run_id: str, summary: Mapping[str, Any] | None) -> str:
    """Assert the registry matches what the flow reported; returns a one-line description of the outcome."""
    versions = versions_of_run(mlflow, run_id)
    registry = registry_outcome(summary)
    if registry is None:
        assert versions == [], "model versions exist for a run whose summary reports no registration"
        return "no registration reported, none found"
    assert [version.version for version in versions] == [registry["version"]]
    version = versions[0]
    assert version.tags["gate.verdict"] == ("passed" if registry["gate_passed"] else "failed")
    champion = alias_version(mlflow, "champion")
    if registry["promoted"]:
        assert champion == version.version
    else:
        assert champion != version.version
    assert champion == registry["champion"]
    return f"version {version.version}, gate {version.tags['gate.verdict']}, champion {champion}"


def checkout(folder: Path) -> Path:
    """A stand-in clone: the flows folder and prefect.yaml (the packages themselves are installed)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "flows").symlink_to(REPO / "flows", target_is_directory=True)
    shutil.copy(REPO / "prefect.yaml", folder / "prefect.yaml")
    return folder


def postgres_available(dsn: str) -> str | None:
    """None when PostgreSQL answers at ``dsn`` (the local cluster started if needed), else why not."""
    import psycopg2

    def connect() -> str | None:
        try:
            psycopg2.connect(dsn, connect_timeout=3).close()
        except psycopg2.OperationalError as error:
            return str(error).strip()
        return None

    problem = connect()
    if problem is None:
        return None
    clusters = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not clusters or shutil.which("pg_ctlcluster") is None:
        return f"no PostgreSQL at {dsn} ({problem}) and no local cluster to start"
    started = subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", clusters[-1], "main", "start"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    deadline = time.monotonic() + 30
    while (problem := connect()) is not None and time.monotonic() < deadline:
        time.sleep(1)
    if problem is None:
        return None
    return f"PostgreSQL did not come up at {dsn}: {problem}; pg_ctlcluster said {started.stderr.strip()!r}"


POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT = 5432
POSTGRES_USER = "postgres"
ADMIN_DSN = f"host={POSTGRES_HOST} port={POSTGRES_PORT} user={POSTGRES_USER} dbname=postgres"


def postgres_admin(statement: str) -> None:
    """Run one statement on the local cluster's ``postgres`` database, outside a transaction (CREATE DATABASE)."""
    import psycopg2

    connection = psycopg2.connect(ADMIN_DSN, connect_timeout=5)
    connection.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()
