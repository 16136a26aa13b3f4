"""The local stack's settings and environments, and the pin its deploy step needs, without a server."""

import argparse
import asyncio
import http.server
import json
import os
import threading
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from ops.stack import LocalStack, StackSettings, running_stack_environment

# -- settings and environments -------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "example.com"])
def test_stack_refuses_to_bind_beyond_loopback(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        StackSettings(host=host)


def test_worker_gets_the_servers_and_the_checkout_and_nothing_inherited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://elsewhere:4200/api")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    monkeypatch.setenv("STAIRWAYS_HOME", "/elsewhere")
    stack = LocalStack(
        StackSettings(
            prefect_port=4301,
            mlflow_port=5301,
            state_dir=tmp_path / "state",
            project_dir=tmp_path,
            worker_environment={"STAIRWAYS_PUSHGATEWAY": "127.0.0.1:9091"},
        )
    )
    worker = stack._worker_environment()
    assert worker["PREFECT_API_URL"] == "http://127.0.0.1:4301/api"
    assert worker["PREFECT_UI_API_URL"] == "http://127.0.0.1:4301/api"
    assert worker["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5301"
    assert worker["STAIRWAYS_HOME"] == str(tmp_path.resolve())
    assert worker["STAIRWAYS_PUSHGATEWAY"] == "127.0.0.1:9091"
    assert worker["PREFECT_HOME"] == str((tmp_path / "state" / "prefect").resolve())
    # Flow runs' scratch files and the tuning studies live in the state folder, not in the checkout.
    assert worker["STAIRWAYS_STATE_DIR"] == str((tmp_path / "state").resolve())
    assert worker["STAIRWAYS_TUNE_STORAGE"] == f"sqlite:///{(tmp_path / 'state').resolve() / 'optuna.db'}"
    deploy = stack.deploy_environment()
    assert "STAIRWAYS_HOME" not in deploy  # resolved by the worker at run time, never baked in
    assert deploy["PREFECT_API_URL"] == "http://127.0.0.1:4301/api"
    server = stack._prefect_server_environment()
    assert server["PREFECT_UI_API_URL"] == "http://127.0.0.1:4301/api"
    assert "PREFECT_API_URL" not in server and "MLFLOW_TRACKING_URI" not in server
    assert stack.mlflow_backend_store_uri == f"sqlite:///{(tmp_path / 'state').resolve() / 'mlflow.db'}"


# -- the dependency pin the deploy step needs ----------------------------------------------------------------


def test_fastapi_treats_null_body_fields_as_missing() -> None:
    """Regression guard: `prefect deploy` sends `{"offset": null, "limit": null}` to a server route declared
    with `offset: int = Body(0)`. fastapi 0.151+ rejects that with 422, so `prefect deploy` fails; 0.150
    applies the defaults (pin fastapi<0.151 with prefect 3.8.8)."""
    import httpx
    from fastapi import Body, FastAPI

    app = FastAPI()

    @app.post("/filter")
    async def read(offset: int = Body(0, ge=0), limit: int = Body(10)) -> dict[str, int]:
        return {"offset": offset, "limit": limit}

    async def post() -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as client:
            return await client.post("/filter", json={"offset": None, "limit": None})

    response = asyncio.run(post())
    assert response.status_code == 200, response.text
    assert response.json() == {"offset": 0, "limit": 10}


# -- `stairways run` finds a running stack -------------------------------------------------------------------


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path.endswith("/health") else 404)
        self.end_headers()
        self.wfile.write(b"true")

    def log_message(self, *args: object) -> None:
        pass


def test_a_running_stack_is_found_only_while_both_servers_answer(tmp_path: Path) -> None:
    assert running_stack_environment(tmp_path) is None  # no stack ever started here
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    stack = LocalStack(StackSettings(state_dir=tmp_path))
    environment = stack.client_environment() | {"PREFECT_API_URL": f"{base}/api", "MLFLOW_TRACKING_URI": base}
    stack.client_file.write_text(json.dumps({"pid": os.getpid(), "environment": environment}))
    try:
        assert running_stack_environment(tmp_path) == environment
        # a stack whose process is gone is not used, even if something answers on its ports
        stack.client_file.write_text(json.dumps({"pid": 2**22 + 12345, "environment": environment}))
        assert running_stack_environment(tmp_path) is None
        stack.client_file.write_text(json.dumps({"pid": os.getpid(), "environment": environment}))
    finally:
        server.shutdown()
        server.server_close()
    assert running_stack_environment(tmp_path) is None  # the file is left behind, the servers are gone
    stack.client_file.write_text("not json")
    assert running_stack_environment(tmp_path) is None


def test_stairways_run_uses_the_running_stack_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ops.stack
    from ops import cli

    found = {
        "PREFECT_API_URL": "http://127.0.0.1:4200/api",
        "PREFECT_UI_URL": "http://127.0.0.1:4200",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
    }
    monkeypatch.setattr(ops.stack, "running_stack_environment", lambda: dict(found))
    for key in found:
        monkeypatch.delenv(key, raising=False)
    # no Prefect API in the settings either (a test session's temporary server sets one)
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        cli._use_running_stack(argparse.Namespace(local=True))
        assert "PREFECT_API_URL" not in os.environ
        monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mine.db")
        cli._use_running_stack(argparse.Namespace(local=False))
        assert "PREFECT_API_URL" not in os.environ  # the user's own setting wins
        monkeypatch.delenv("MLFLOW_TRACKING_URI")
        cli._use_running_stack(argparse.Namespace(local=False))
        assert os.environ["PREFECT_API_URL"] == found["PREFECT_API_URL"]
        assert os.environ["MLFLOW_TRACKING_URI"] == found["MLFLOW_TRACKING_URI"]
        for key in found:
            monkeypatch.delenv(key, raising=False)
