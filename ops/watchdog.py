"""A watchdog for ``stairways run``: when the CLI dies (even by ``kill -9``), its child processes go too.

Prefect starts a temporary API server as a child process of a flow run that has no API configured; a
killed parent leaves that server running as an orphan. ``python -m ops.watchdog PID`` runs in its own
session, remembers ``PID``'s child processes once a second (``/proc/<pid>/task/*/children``), and when
``PID`` is gone sends SIGTERM (then SIGKILL after a grace period) to each remembered child that still
exists, was re-parented (its parent is no longer ``PID``) and still has the command line it had. It exits
right after, or when ``PID`` exits normally with no children left. Linux only (``/proc``); elsewhere it
exits at once and does nothing.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

__all__ = ["children", "main", "process_alive", "run_watched", "start"]

T = TypeVar("T")

_POLL_SECONDS = 1.0
_GRACE_SECONDS = 5.0


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


def _parent(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1])


def children(pid: int) -> dict[int, bytes]:
    """The direct child processes of ``pid`` with their command lines (empty when it has none or is gone)."""
    found: dict[int, bytes] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            listed = (task / "children").read_text().split()
        except OSError:
            continue
        for child in map(int, listed):
            command = _cmdline(child)
            if command is not None:
                found[child] = command
    return found


def _reap(watched: int, remembered: dict[int, bytes]) -> None:
    orphans = [
        pid
        for pid, command in remembered.items()
        if process_alive(pid) and _parent(pid) != watched and _cmdline(pid) == command
    ]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in orphans:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + _GRACE_SECONDS
        while time.monotonic() < deadline and any(process_alive(pid) for pid in orphans):
            time.sleep(0.1)
        orphans = [pid for pid in orphans if process_alive(pid)]
        if not orphans:
            return


def watch(pid: int, *, poll_seconds: float = _POLL_SECONDS) -> None:
    """Remember ``pid``'s children while it lives; when it dies, stop the ones it left behind."""
    remembered: dict[int, bytes] = {}
    me = os.getpid()  # started by the watched process, the watchdog is one of its children: never itself
    while process_alive(pid) and _parent(pid) is not None:
        current = {child: command for child, command in children(pid).items() if child != me}
        remembered = {**{k: v for k, v in remembered.items() if process_alive(k)}, **current}
        time.sleep(poll_seconds)
    _reap(pid, remembered)


def start(pid: int | None = None) -> subprocess.Popen[bytes] | None:
    """Start a watchdog of ``pid`` (default: this process) in its own session; None where /proc is absent."""
    if not Path("/proc/self/task").is_dir():
        return None
    target = os.getpid() if pid is None else pid
    return subprocess.Popen(
        [sys.executable, "-m", "ops.watchdog", str(target)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ops.watchdog PID``."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if len(arguments) != 1 or not arguments[0].isdigit():
        print("usage: python -m ops.watchdog PID", file=sys.stderr)
        return 2
    if Path("/proc/self/task").is_dir():
        watch(int(arguments[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())


def run_watched(run_flow: Callable[[], T]) -> T:
    """Run a flow; without a Prefect API the temporary server it starts must not outlive a killed CLI, so a
    watchdog stops it when this process dies."""
    watchdog = None if os.environ.get("PREFECT_API_URL") else start()
    try:
        return run_flow()
    finally:
        if watchdog is not None:
            watchdog.terminate()
