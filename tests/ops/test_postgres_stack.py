"""The docker-compose configuration, natively: Prefect server and MLflow server on a real PostgreSQL.

Fresh databases with unique names are created for the test and dropped at the end. Skipped only when no
PostgreSQL can be reached or started on this machine.
"""

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import PrefectClient

from ops.stack import LocalStack, StackSettings
from ops.supervisor import free_port
from tests.ops.support import (
    ADMIN_DSN,
    POSTGRES_HOST,
    POSTGRES_PORT,
    POSTGRES_USER,
    PROMOTABLE_PARAMETERS,
    TEST_ARTIFACTS,
    check_registry,
    checkout,
    parent_runs,
    postgres_admin,
    postgres_available,
    run,
    wait_for_final_states,
)

pytestmark = pytest.mark.slow




def _query(database: str, statement: str, parameters: tuple = ()) -> list[tuple]:
    import psycopg2

    connection = psycopg2.connect(
        host=POSTGRES_HOST, port=POSTGRES_PORT, user=POSTGRES_USER, dbname=database, connect_timeout=5
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement, parameters)
            return cursor.fetchall()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def databases() -> Iterator[dict[str, str]]:
    """Two fresh databases (Prefect's, MLflow's) on the local PostgreSQL; dropped afterwards."""
    pytest.importorskip("psycopg2", reason="psycopg2 is not installed (MLflow's PostgreSQL driver)")
    problem = postgres_available(ADMIN_DSN)
    if problem is not None:
        pytest.skip(f"no PostgreSQL for the server-stack test: {problem}")
    suffix = uuid.uuid4().hex[:10]
    names = {"prefect": f"stairways_test_prefect_{suffix}", "mlflow": f"stairways_test_mlflow_{suffix}"}
    for name in names.values():
        postgres_admin(f'CREATE DATABASE "{name}"')
    try:
        yield names
    finally:
        for name in names.values():
            postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def postgres_stack(
    databases: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    root = tmp_path_factory.mktemp("postgres-stack")
    base = f"{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}"
    settings = StackSettings(
        prefect_port=free_port(),
        mlflow_port=free_port(),
        state_dir=root / "state",
        project_dir=checkout(root / "checkout"),
        prefect_database_url=f"postgresql+asyncpg://{base}/{databases['prefect']}",
        mlflow_backend_store_uri=f"postgresql://{base}/{databases['mlflow']}",
        worker_poll_seconds=1.0,
        worker_environment={"PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true"},
    )
    with LocalStack(settings) as stack:
        stack.deploy()
        yield stack
    logs = Path(settings.state_dir) / "logs"
    target = TEST_ARTIFACTS / "postgres-stack-logs"
    target.mkdir(parents=True, exist_ok=True)
    for log in logs.iterdir():
        (target / log.name).write_bytes(log.read_bytes())


def test_flow_run_through_postgres_backed_servers_lands_in_postgres(
    postgres_stack: LocalStack, databases: dict[str, str]
) -> None:
    async def trigger() -> tuple:
        async with PrefectClient(api=postgres_stack.prefect_api_url) as client:
            deployment = await client.read_deployment_by_name("nightly-retrain/retrain-adhoc")
            created = await client.create_flow_run_from_deployment(
                deployment.id, parameters=PROMOTABLE_PARAMETERS
            )
            final = (await wait_for_final_states(client, [created.id], timeout=600))[created.id]
            summary = (
                await final.state.aresult(raise_on_failure=False) if final.state.is_completed() else None
            )
            return final, summary

    started = time.monotonic()
    flow_run, summary = run(trigger())
    assert flow_run.state.is_completed(), flow_run.state
    elapsed = time.monotonic() - started

    # Prefect's records, read straight from its PostgreSQL database.
    prefect_db = databases["prefect"]
    assert _query(prefect_db, "SELECT state_type FROM flow_run WHERE id = %s", (str(flow_run.id),)) == [
        ("COMPLETED",)
    ]
    task_states = _query(
        prefect_db,
        "SELECT state_type, count(*) FROM task_run WHERE flow_run_id = %s GROUP BY 1",
        (str(flow_run.id),),
    )
    assert dict(task_states).keys() == {"COMPLETED"} and dict(task_states)["COMPLETED"] >= 10
    assert sorted(row[0] for row in _query(prefect_db, "SELECT name FROM deployment")) == [
        "nightly-retrain",
        "retrain-adhoc",
        "tune-adhoc",
        "weekly-tune",
    ]
    # The scheduler wrote the nightly deployment's upcoming runs into Postgres too.
    scheduled_sql = (
        "SELECT count(*) FROM flow_run f JOIN deployment d ON f.deployment_id = d.id "
        "WHERE d.name = 'nightly-retrain' AND f.state_type = 'SCHEDULED'"
    )
    deadline = time.monotonic() + 90
    while _query(prefect_db, scheduled_sql)[0][0] == 0 and time.monotonic() < deadline:
        time.sleep(2)
    assert _query(prefect_db, scheduled_sql)[0][0] >= 3

    # MLflow's records, read straight from its PostgreSQL database.
    mlflow_db = databases["mlflow"]
    rows = _query(
        mlflow_db,
        "SELECT r.run_uuid, r.status, r.artifact_uri FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
        "WHERE t.key = 'prefect.flow_run_id' AND t.value = %s",
        (str(flow_run.id),),
    )
    assert len(rows) == 1
    run_id, status, artifact_uri = rows[0]
    assert status == "FINISHED" and artifact_uri.startswith("mlflow-artifacts:/")
    assert summary["mlflow_run_id"] == run_id
    metric_count = _query(mlflow_db, "SELECT count(*) FROM latest_metrics WHERE run_uuid = %s", (run_id,))[0][
        0
    ]
    assert metric_count >= 20
    assert _query(mlflow_db, "SELECT count(*) FROM params WHERE run_uuid = %s", (run_id,))[0][0] >= 50
    versions = _query(mlflow_db, "SELECT name, version FROM model_versions WHERE run_id = %s", (run_id,))
    assert versions == [("stairways-agent", int(summary["registered_version"]))]
    aliases = _query(mlflow_db, "SELECT alias, version FROM registered_model_aliases")
    assert ("champion", int(summary["registered_version"])) in aliases

    # The same through the tracking server, and the artifact files on its artifact store.
    mlflow = MlflowClient(tracking_uri=postgres_stack.mlflow_url)
    assert [found.info.run_id for found in parent_runs(mlflow, flow_run.id)] == [run_id]
    check_registry(mlflow, run_id, summary)
    assert list(postgres_stack.mlflow_artifacts_destination.rglob("report.md"))
    (TEST_ARTIFACTS / "postgres-stack-timing.txt").write_text(
        f"flow run through Postgres servers: {elapsed:.1f} s\n"
    )
