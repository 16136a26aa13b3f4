"""The ops tests' shared stack: a Prefect server, an MLflow server and a worker on free loopback ports."""

import time
from collections.abc import Iterator

import pytest

from ops.stack import LocalStack, StackSettings
from ops.supervisor import free_port
from tests.ops.support import TEST_ARTIFACTS, checkout


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Started with SQLite stores, deployed from a temporary checkout's prefect.yaml; stopped at the end.

    The worker persists flow results (PREFECT_RESULTS_PERSIST_BY_DEFAULT): tests read the flow's summary.
    """
    root = tmp_path_factory.mktemp("stack")
    settings = StackSettings(
        prefect_port=free_port(),
        mlflow_port=free_port(),
        state_dir=root / "state",
        project_dir=checkout(root / "checkout"),
        worker_poll_seconds=1.0,
        worker_environment={"PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true"},
    )
    stack = LocalStack(settings)
    started = time.monotonic()
    stack.start()
    try:
        up = time.monotonic()
        names = stack.deploy()
        deployed = time.monotonic()
        TEST_ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (TEST_ARTIFACTS / "stack-timings.txt").write_text(
            f"servers and worker healthy: {up - started:.1f} s\nprefect deploy --all: {deployed - up:.1f} s\n"
            f"deployments: {', '.join(names)}\n"
        )
        yield stack
    finally:
        stack.stop()
        assert not stack.client_file.exists(), "a stopped stack must not advertise itself to `stairways run`"
        logs = settings.state_dir / "logs"
        if logs.is_dir():
            target = TEST_ARTIFACTS / "stack-logs"
            target.mkdir(parents=True, exist_ok=True)
            for log in logs.iterdir():
                (target / log.name).write_bytes(log.read_bytes())
