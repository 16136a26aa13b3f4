"""ops/watchdog.py: the children of a killed process are stopped; nothing else is touched."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ops.watchdog import children, start

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")

PARENT = "import subprocess, time; subprocess.Popen(['sleep', '300']); time.sleep(300)"


def _wait_for(condition: object, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_the_children_of_a_killed_parent_are_stopped() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT])
    try:
        assert _wait_for(lambda: children(parent.pid))
        watchdog = start(parent.pid)
        assert watchdog is not None
        orphan = next(iter(children(parent.pid)))
        time.sleep(1.5)  # one poll at least
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        assert _wait_for(lambda: not Path(f"/proc/{orphan}").exists() or "Z" in _state(orphan))
        assert watchdog.wait(timeout=15) == 0
    finally:
        if parent.poll() is None:
            parent.kill()


def test_a_parent_that_ends_normally_leaves_nothing_for_the_watchdog_to_do() -> None:
    survivor = subprocess.Popen(["sleep", "30"])  # not a child of the watched process
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    watchdog = start(parent.pid)
    assert watchdog is not None
    parent.wait()
    assert watchdog.wait(timeout=15) == 0
    assert survivor.poll() is None
    survivor.kill()
    survivor.wait()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
