"""Test-session isolation: Prefect and MLflow write only under a temporary folder; no telemetry."""

import http.server
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import RecordedPush, RecordingGateway

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="stairways-tests-"))
os.environ["PREFECT_HOME"] = str(_SESSION_HOME / "prefect")
os.environ["PREFECT_LOCAL_STORAGE_PATH"] = str(_SESSION_HOME / "prefect" / "storage")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_TO_API_ENABLED"] = "false"
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_SESSION_HOME / 'mlflow.db'}"
os.environ.pop("PREFECT_API_URL", None)






@pytest.fixture
def gateway() -> Iterator[RecordingGateway]:
    """A stand-in push gateway on a free loopback port that records every request and answers 200."""
    recorded: list[RecordedPush] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            recorded.append(RecordedPush(self.command, self.path, self.rfile.read(length).decode()))
            self.send_response(200)
            self.end_headers()

        do_PUT = do_POST = _record

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield RecordingGateway(f"127.0.0.1:{server.server_address[1]}", recorded)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """A real, temporary Prefect API server (started as a subprocess) for the whole test session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
