"""The ``python -m ops.serve`` command line."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PREFECT_YAML = REPO / "prefect.yaml"


def test_schedule_command_checks_the_committed_file() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "ops.serve", "schedule", "--file", str(PREFECT_YAML)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "current" in completed.stdout

