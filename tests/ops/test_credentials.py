"""The compose stack's protection, on loopback: both servers refuse a request without the credentials.

The compose file runs Prefect with ``PREFECT_SERVER_API_AUTH_STRING`` and MLflow with its basic-auth app
(``configs/mlflow-basic-auth.ini``). Here the same two settings start real servers on loopback ports; a
request without credentials (what a DNS-rebinding page in a browser sends, whatever its Host header) gets
401, the same request with them succeeds, and the health probes stay open.
"""

import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.supervisor import free_port

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _status(url: str, *, method: str = "GET", auth: str | None = None, host: str | None = None) -> int:
    request = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
    request.add_header("Content-Type", "application/json")
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    if host is not None:
        request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, f"server exited with {process.returncode}"
        try:
            if _status(url) == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} did not become healthy")


@contextlib.contextmanager
def _served(
    command: list[str], *, folder: Path, environment: dict[str, str], health: str, log: str
) -> Iterator[None]:
    """Run a server in its own session until the block ends; wait until ``health`` answers 200."""
    process = subprocess.Popen(
        command, cwd=folder, env=environment, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=(folder / log).open("wb"),
    )  # fmt: skip
    try:
        _wait_healthy(health, process)
        yield
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def mlflow_with_auth(tmp_path: Path) -> Iterator[str]:
    shipped = (REPO / "configs" / "mlflow-basic-auth.ini").read_text()
    config = tmp_path / "auth.ini"
    config.write_text(shipped.replace("sqlite:////mlauth/basic_auth.db", f"sqlite:///{tmp_path / 'auth.db'}"))
    port = free_port()
    environment = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_PASSWORD": "a-real-long-password-42",
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "a-test-secret-key-of-some-length",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    command = [
        str(Path(sys.executable).parent / "mlflow"), "server", "--app-name", "basic-auth",
        "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--artifacts-destination", str(tmp_path / "artifacts"),
    ]  # fmt: skip
    address = f"http://127.0.0.1:{port}"
    with _served(
        command, folder=tmp_path, environment=environment, health=f"{address}/health", log="mlflow.log"
    ):
        yield address


@pytest.fixture
def prefect_with_auth(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    environment = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_API_AUTH_STRING": "stairways:a-real-long-password-42",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }
    environment.pop("PREFECT_API_URL", None)
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    api = f"http://127.0.0.1:{port}/api"
    with _served(
        command, folder=tmp_path, environment=environment, health=f"{api}/health", log="prefect.log"
    ):
        yield api


def test_mlflow_asks_for_the_admin_credentials(mlflow_with_auth: str) -> None:
    search = f"{mlflow_with_auth}/api/2.0/mlflow/experiments/search?max_results=1"
    assert _status(search) == 401
    assert _status(search, auth="admin:wrong-password") == 401
    assert _status(search, auth="admin:a-real-long-password-42") == 200


def test_prefect_asks_for_the_auth_string_whatever_the_host_header(prefect_with_auth: str) -> None:
    flows = f"{prefect_with_auth}/flows/filter"
    assert _status(flows, method="POST") == 401
    assert _status(flows, method="POST", host="attacker.example:4200") == 401
    assert _status(flows, method="POST", auth="stairways:wrong") == 401
    assert _status(flows, method="POST", auth="stairways:a-real-long-password-42") == 200
