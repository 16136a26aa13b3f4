"""Serving as the README prints it: a verified copy of the champion behind `mlflow models serve` on loopback,
asked over HTTP, answering each observation's action with its names."""

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core.spec import ACTION_MEANINGS
from ops.cli import main
from ops.supervisor import free_port
from tests.stairways.registry_support import Checkpoints, Tracking, observations, promote, register
from training.checkpoints import load_checkpoint

pytestmark = pytest.mark.slow

VENV_BIN = Path(sys.executable).parent


def _wait_for(url: str, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            pytest.fail(f"mlflow models serve exited with {process.returncode}:\n{output[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"the model server did not answer {url} within {timeout:.0f} s")


def test_the_served_champion_answers_named_actions_over_http(
    tracking: Tracking,
    checkpoints: Checkpoints,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    candidate = register(tracking, checkpoints)
    promote(
        tracking_uri=tracking.uri, model_name=tracking.model_name, version=candidate.version, reason="serve"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.uri)
    # The README's first line: `stairways fetch-model --to served/champion --model NAME`.
    assert main(["fetch-model", "--to", str(tmp_path / "served"), "--model", tracking.model_name]) == 0
    printed = capsys.readouterr().out
    # The README's second line, as the command prints it: the venv's bin first on PATH (`mlflow models serve`
    # starts `uvicorn` from PATH), then the venv's mlflow.
    path_setting, *command = printed.split("serve it: ", 1)[1].strip().split()
    assert path_setting == f"PATH={VENV_BIN}:$PATH"
    assert command[:3] == [f"{VENV_BIN}/mlflow", "models", "serve"]
    port = free_port()
    command[command.index("--port") + 1] = str(port)
    environment = {
        **os.environ,
        "PATH": path_setting.removeprefix("PATH=").replace("$PATH", os.environ["PATH"]),
    }
    server = subprocess.Popen(
        command,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_for(f"http://127.0.0.1:{port}/ping", server)
        batch = observations(checkpoints.validation, rows=8)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"inputs": batch.tolist()}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
    finally:
        server.terminate()
        server.wait(timeout=30)
    expected = load_checkpoint(checkpoints.trained).predict(batch)
    rows = answer["predictions"]
    symbols = list(checkpoints.validation.symbols)
    assert [row["action"] for row in rows] == expected.tolist()
    for row in rows:
        assert row["meaning"] == ACTION_MEANINGS[row["action"]]
        assert [row[symbols[0]], row[symbols[1]]] == row["meaning"].split("/")
