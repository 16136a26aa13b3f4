"""Run and watch the child processes of a service stack: start, stop, health-check.

:func:`start_service` starts a command in its own process group, output appended to a log file, as a
:class:`ServiceProcess`; :func:`stop_service` sends SIGTERM to the group and SIGKILL after a grace period
(children that outlived their leader with it); :func:`wait_for_http` polls a health URL until it answers
200, failing fast with the end of the log when the service exits first. :func:`free_port` picks a port for
tests. Failures raise :class:`StackError`. The local production stack of :mod:`ops.stack` is built on these.
"""

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from core.errors import PipelineError

__all__ = [
    "ServiceProcess",
    "StackError",
    "free_port",
    "start_service",
    "stop_service",
    "wait_for_http",
]

_LOGGER = logging.getLogger("ops.supervisor")


class StackError(PipelineError):
    """A service of the local stack failed to start, became unhealthy, or a deployment step failed."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass
class ServiceProcess:
    """One service of the stack: command, process (leader of its own process group) and log file."""

    name: str
    command: list[str]
    process: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] | None = field(default=None, repr=False)

    def running(self) -> bool:
        """Whether the process is still alive."""
        return self.process.poll() is None

    def log_tail(self, characters: int = 3000) -> str:
        """The end of the service's log, for error messages."""
        try:
            return self.log_path.read_text(errors="replace")[-characters:]
        except OSError:
            return ""


def start_service(
    name: str, command: Sequence[str], *, env: Mapping[str, str], cwd: Path, log_path: Path
) -> ServiceProcess:
    """Start ``command`` in a new session (its own process group), output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    try:
        process = subprocess.Popen(
            list(command),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as error:
        log.close()
        msg = f"cannot start {name}: {error}"
        raise StackError(msg) from error
    _LOGGER.info("started %s (pid %d): %s", name, process.pid, " ".join(command))
    return ServiceProcess(name=name, command=list(command), process=process, log_path=log_path, _log=log)


def _signal_group(service: ServiceProcess, signum: int) -> None:
    try:
        os.killpg(service.process.pid, signum)
    except ProcessLookupError:
        pass


def stop_service(service: ServiceProcess, *, grace_seconds: float = 20.0) -> int | None:
    """SIGTERM the service's process group, SIGKILL it after ``grace_seconds``; returns the exit code."""
    if service.running():
        _signal_group(service, signal.SIGTERM)
        try:
            service.process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            _LOGGER.warning("%s did not stop within %.0f s: killing it", service.name, grace_seconds)
            _signal_group(service, signal.SIGKILL)
            service.process.wait(timeout=10)
    # Children that outlived their leader (uvicorn workers, flow-run processes) share its process group.
    _signal_group(service, signal.SIGKILL)
    if service._log is not None:
        service._log.close()
        service._log = None
    return service.process.returncode


def wait_for_http(
    url: str,
    *,
    timeout: float,
    service: ServiceProcess | None = None,
    accept: Any = None,
    interval: float = 0.5,
) -> httpx.Response:
    """Poll ``url`` until it answers 200 (and ``accept(response)`` holds, when given).

    Fails fast, with the end of its log, when ``service`` exits first.
    """
    deadline = time.monotonic() + timeout
    last_problem = "no answer yet"
    while time.monotonic() < deadline:
        if service is not None and not service.running():
            msg = (
                f"{service.name} exited with code {service.process.returncode} before {url} answered; "
                f"log {service.log_path}:\n{service.log_tail()}"
            )
            raise StackError(msg)
        try:
            response = httpx.get(url, timeout=5.0)
        except httpx.HTTPError as error:
            last_problem = f"{type(error).__name__}: {error}"
        else:
            if response.status_code == 200 and (accept is None or accept(response)):
                return response
            last_problem = f"HTTP {response.status_code}: {response.text[:200]}"
        time.sleep(interval)
    where = f"; log {service.log_path}:\n{service.log_tail()}" if service is not None else ""
    msg = f"{url} not healthy after {timeout:.0f} s ({last_problem}){where}"
    raise StackError(msg)
