"""Run the stack like production, on loopback: Prefect server, MLflow tracking server, process worker.

``python -m stairways.serve up`` (``make serve``) starts, bound to 127.0.0.1:

- the Prefect server (API and UI) on a SQLite database in the state folder, or on Postgres with
  ``--prefect-database-url postgresql+asyncpg://...``; ``PREFECT_UI_API_URL`` is set so the UI works on
  any port;
- the MLflow tracking server with a SQL backend store (SQLite in the state folder, or ``postgresql://...``),
  serving artifacts from a folder (``--serve-artifacts --artifacts-destination``);
- a Prefect process worker on the ``stairways-local`` pool. Its flow runs get ``PREFECT_API_URL``,
  ``PREFECT_UI_API_URL`` and ``MLFLOW_TRACKING_URI`` of these servers and ``STAIRWAYS_HOME`` (the checkout,
  where the deployments' pull step changes directory to);

then registers the deployments of ``prefect.yaml`` (``prefect --no-prompt deploy --all``) and waits for
SIGINT or SIGTERM. Every service runs in its own process group; stopping sends SIGTERM to each group (worker
first) and SIGKILL after a grace period. The integration tests drive the same :class:`LocalStack` on free
ports.

**The nightly schedule** (:func:`nightly_rrule`): cron cannot skip exchange holidays, so the
``nightly-retrain`` deployment uses an RFC 5545 rule: every weekday at 17:30 New York time, minus an
``EXDATE`` for every NYSE full-day holiday of a span of years (``market.calendar.holidays``). The block in
``prefect.yaml`` between the ``BEGIN generated``/``END generated`` markers is written by
``python -m stairways.serve schedule --write`` and checked by ``schedule`` (and the tests): it must equal the
generator's output and reach at least :data:`MIN_SCHEDULE_HORIZON_YEARS` ahead. Closures announced at short
notice (days of mourning, weather) cannot be generated in advance; a run on such a day retrains on the
previous session's data.
"""

import argparse
import atexit
import ipaddress
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from datetime import time as clock_time
from pathlib import Path
from typing import IO, Any, Self

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from market.calendar import EXCHANGE_TZ, holidays
from stairways.errors import ConfigError, PipelineError, describe_validation_error

__all__ = [
    "DEFAULT_WORK_POOL",
    "MIN_SCHEDULE_HORIZON_YEARS",
    "NIGHTLY_DEPLOYMENT",
    "NIGHTLY_RUN_TIME",
    "SCHEDULE_BEGIN_MARKER",
    "SCHEDULE_END_MARKER",
    "SCHEDULE_TIMEZONE",
    "LocalStack",
    "ServiceProcess",
    "StackError",
    "StackSettings",
    "check_schedule",
    "committed_schedule",
    "deploy",
    "free_port",
    "main",
    "nightly_rrule",
    "registered_deployments",
    "rrule_years",
    "schedule_block",
    "serve_until_signal",
    "start_service",
    "stop_service",
    "wait_for_http",
    "write_schedule",
]

_LOGGER = logging.getLogger("stairways.serve")

DEFAULT_WORK_POOL = "stairways-local"
NIGHTLY_DEPLOYMENT = "nightly-retrain"
NIGHTLY_RUN_TIME = clock_time(17, 30)
SCHEDULE_TIMEZONE = str(EXCHANGE_TZ.key)
MIN_SCHEDULE_HORIZON_YEARS = 1
SCHEDULE_BEGIN_MARKER = (
    "# BEGIN generated: nightly trading-day schedule (python -m stairways.serve schedule --write)"
)
SCHEDULE_END_MARKER = "# END generated: nightly trading-day schedule"
_DEFAULT_SCHEDULE_YEARS = 10
# Settings the children may inherit from the caller; every other PREFECT_*/MLFLOW_* variable is dropped so a
# user profile or a test harness cannot point the stack somewhere else.
_INHERITED_SETTINGS = ("PREFECT_LOGGING_LEVEL",)


class StackError(PipelineError):
    """A service of the local stack failed to start, became unhealthy, or a deployment step failed."""


# ------------------------------------------------------------------------------------------------------------
# Schedule generator
# ------------------------------------------------------------------------------------------------------------


def nightly_rrule(first_year: int, last_year: int, *, run_time: clock_time = NIGHTLY_RUN_TIME) -> str:
    """RFC 5545 rule of the nightly run: weekdays at ``run_time`` (New York), minus NYSE holidays.

    One ``EXDATE`` line per year from ``first_year`` to ``last_year`` (both included) lists the full-day
    closures of ``market.calendar.holidays``; the rule starts on January 1 of ``first_year`` and has no end,
    so after ``last_year`` it still runs on every weekday (regenerate before then: :func:`check_schedule`).
    Times are floating (no offset): Prefect localizes them to the schedule's ``timezone``.
    """
    if last_year < first_year:
        msg = f"last_year {last_year} is before first_year {first_year}"
        raise ValueError(msg)
    stamp = run_time.strftime("T%H%M%S")
    lines = [
        f"DTSTART:{first_year:04d}0101{stamp}",
        (
            "RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;"
            f"BYHOUR={run_time.hour};BYMINUTE={run_time.minute};BYSECOND=0"
        ),
    ]
    for year in range(first_year, last_year + 1):
        closed = sorted(holidays(year))
        if closed:
            lines.append("EXDATE:" + ",".join(day.strftime("%Y%m%d") + stamp for day in closed))
    return "\n".join(lines)


def rrule_years(rrule: str) -> tuple[int, int]:
    """The (first, last) years a generated rule covers: its ``DTSTART`` year and its last ``EXDATE`` year."""
    start = re.search(r"^DTSTART:(\d{4})", rrule, flags=re.MULTILINE)
    excluded = re.findall(r"(\d{4})\d{4}T\d{6}", "\n".join(re.findall(r"^EXDATE:(.*)$", rrule, re.MULTILINE)))
    if start is None or not excluded:
        msg = "the rule has no DTSTART or no EXDATE line: it was not made by nightly_rrule"
        raise ValueError(msg)
    return int(start.group(1)), max(int(year) for year in excluded)


def schedule_block(first_year: int, last_year: int, *, indent: int = 6) -> str:
    """The YAML lines (between and including the markers) of the nightly deployment's ``schedules`` list."""
    pad = " " * indent
    rule = nightly_rrule(first_year, last_year)
    body = "\n".join(f"{pad}    {line}" for line in rule.splitlines())
    return (
        f"{pad}{SCHEDULE_BEGIN_MARKER}\n"
        f"{pad}# Weekdays {NIGHTLY_RUN_TIME:%H:%M} New York, "
        f"NYSE holidays {first_year}-{last_year} excluded.\n"
        f"{pad}- rrule: |-\n{body}\n"
        f"{pad}  timezone: {SCHEDULE_TIMEZONE}\n"
        f"{pad}  active: true\n"
        f"{pad}{SCHEDULE_END_MARKER}"
    )


def _marker_span(text: str, *, path: Path) -> tuple[int, int, int]:
    """(start of the BEGIN line, end of the END line, indentation) of the generated block in ``text``."""
    begin = text.find(SCHEDULE_BEGIN_MARKER)
    end = text.find(SCHEDULE_END_MARKER)
    if begin < 0 or end < begin:
        msg = f"{path} has no '{SCHEDULE_BEGIN_MARKER}' ... '{SCHEDULE_END_MARKER}' block"
        raise ConfigError(msg)
    line_start = text.rfind("\n", 0, begin) + 1
    return line_start, end + len(SCHEDULE_END_MARKER), begin - line_start


def write_schedule(path: Path, *, first_year: int, last_year: int) -> str:
    """Replace the generated schedule block of ``prefect.yaml`` at ``path``; returns the new rule."""
    text = Path(path).read_text()
    start, stop, indent = _marker_span(text, path=Path(path))
    Path(path).write_text(text[:start] + schedule_block(first_year, last_year, indent=indent) + text[stop:])
    return nightly_rrule(first_year, last_year)


def committed_schedule(path: Path, *, deployment: str = NIGHTLY_DEPLOYMENT) -> dict[str, Any]:
    """The first schedule of ``deployment`` in the ``prefect.yaml`` at ``path``, as written."""
    document = yaml.safe_load(Path(path).read_text())
    for entry in document.get("deployments") or []:
        if entry.get("name") == deployment:
            schedules = entry.get("schedules") or []
            if not schedules:
                msg = f"deployment {deployment!r} in {path} has no schedule"
                raise ConfigError(msg)
            return dict(schedules[0])
    msg = f"{path} has no deployment named {deployment!r}"
    raise ConfigError(msg)


def check_schedule(path: Path, *, today: date | None = None) -> list[str]:
    """Problems with the committed nightly schedule (empty when it is current).

    The rule must equal :func:`nightly_rrule` for the years it covers, be in ``America/New_York`` and cover at
    least :data:`MIN_SCHEDULE_HORIZON_YEARS` years after ``today``.
    """
    schedule = committed_schedule(path)
    rule = str(schedule.get("rrule") or "")
    if not rule:
        return [f"the nightly schedule in {path} is not an rrule: holidays cannot be excluded"]
    problems: list[str] = []
    first, last = rrule_years(rule)
    if rule.strip() != nightly_rrule(first, last):
        problems.append(f"the rule differs from nightly_rrule({first}, {last}): regenerate it")
    if schedule.get("timezone") != SCHEDULE_TIMEZONE:
        problems.append(f"timezone is {schedule.get('timezone')!r}, expected {SCHEDULE_TIMEZONE!r}")
    horizon = (today or date.today()).year + MIN_SCHEDULE_HORIZON_YEARS
    if last < horizon:
        problems.append(f"holidays are listed through {last} only; extend to {horizon} or later")
    return problems


# ------------------------------------------------------------------------------------------------------------
# Processes and health
# ------------------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------------------
# The stack
# ------------------------------------------------------------------------------------------------------------


class StackSettings(BaseModel):
    """Where and how the local stack runs. Every service binds to ``host``, a loopback address."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field("127.0.0.1", description="Loopback address every service binds to.")
    prefect_port: int = Field(4200, ge=1, le=65535, description="Prefect API and UI port.")
    mlflow_port: int = Field(
        5000, ge=1, le=65535, description="MLflow tracking server (API, UI, artifacts) port."
    )
    state_dir: Path = Field(
        Path(".stairways/serve"),
        description="Prefect home, SQLite databases, MLflow artifacts and service logs.",
    )
    project_dir: Path = Field(
        default_factory=Path.cwd,
        description="The checkout flow runs execute in (`STAIRWAYS_HOME` of the deployments' pull step).",
    )
    prefect_database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the Prefect database (`postgresql+asyncpg://...`); "
        "None: SQLite in state_dir.",
    )
    mlflow_backend_store_uri: str | None = Field(
        None,
        description="MLflow backend store (`postgresql://...`, `sqlite:///...`); None: SQLite in state_dir.",
    )
    mlflow_artifacts_destination: Path | None = Field(
        None,
        description="Folder the MLflow server stores and serves artifacts in; None: state_dir/mlartifacts.",
    )
    mlflow_workers: int = Field(2, ge=1, description="MLflow server worker processes.")
    work_pool: str = Field(DEFAULT_WORK_POOL, min_length=1, description="Process work pool the worker polls.")
    worker: bool = Field(True, description="Start a process worker.")
    worker_poll_seconds: float = Field(
        10.0, gt=0, description="How often the worker polls for scheduled runs."
    )
    worker_environment: dict[str, str] = Field(
        default_factory=dict,
        description="Extra environment of the worker and its flow runs (e.g. STAIRWAYS_PUSHGATEWAY).",
    )
    startup_timeout: float = Field(
        180.0, gt=0, description="Seconds each service may take to become healthy."
    )
    stop_grace_seconds: float = Field(20.0, gt=0, description="Seconds between SIGTERM and SIGKILL on stop.")

    @field_validator("host")
    @classmethod
    def _loopback(cls, value: str) -> str:
        if value == "localhost":
            return value
        try:
            loopback = ipaddress.ip_address(value).is_loopback
        except ValueError as error:
            msg = f"host must be a loopback address such as 127.0.0.1, got {value!r}"
            raise ValueError(msg) from error
        if not loopback:
            msg = f"host must be a loopback address (the local stack is not for the network), got {value!r}"
            raise ValueError(msg)
        return value


def _python_module(module: str, *arguments: str) -> list[str]:
    return [sys.executable, "-m", module, *arguments]


class LocalStack:
    """The Prefect server, the MLflow server and a process worker as child processes; a context manager."""

    def __init__(self, settings: StackSettings | None = None) -> None:
        self.settings = settings or StackSettings()
        self.state_dir = self.settings.state_dir.resolve()
        self.project_dir = self.settings.project_dir.resolve()
        self.services: dict[str, ServiceProcess] = {}

    # -- addresses -------------------------------------------------------------------------------------------
    @property
    def _netloc(self) -> str:
        host = self.settings.host
        return f"[{host}]" if ":" in host else host

    @property
    def prefect_url(self) -> str:
        """The Prefect UI."""
        return f"http://{self._netloc}:{self.settings.prefect_port}"

    @property
    def prefect_api_url(self) -> str:
        """The Prefect API (``PREFECT_API_URL``)."""
        return f"{self.prefect_url}/api"

    @property
    def mlflow_url(self) -> str:
        """The MLflow tracking server (``MLFLOW_TRACKING_URI``; also its UI)."""
        return f"http://{self._netloc}:{self.settings.mlflow_port}"

    @property
    def prefect_home(self) -> Path:
        """PREFECT_HOME of every service: profiles, worker results (storage/)."""
        return self.state_dir / "prefect"

    @property
    def mlflow_backend_store_uri(self) -> str:
        """The MLflow server's backend store: the configured URI or SQLite in the state folder."""
        return self.settings.mlflow_backend_store_uri or f"sqlite:///{self.state_dir / 'mlflow.db'}"

    @property
    def mlflow_artifacts_destination(self) -> Path:
        """Where the MLflow server keeps the artifacts it serves."""
        return (self.settings.mlflow_artifacts_destination or self.state_dir / "mlartifacts").resolve()

    @property
    def promotion_lock(self) -> str:
        """The registry's promotion lock: an advisory lock in a PostgreSQL store, else a file in the state folder."""
        store = self.mlflow_backend_store_uri
        return store if store.startswith("postgresql") else str(self.state_dir / "promotion.lock")

    # -- environments ----------------------------------------------------------------------------------------
    def _base_environment(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PREFECT_", "MLFLOW_")) or key in _INHERITED_SETTINGS
        }
        env.pop("STAIRWAYS_HOME", None)
        env.update(
            PREFECT_HOME=str(self.prefect_home),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PYTHONUNBUFFERED="1",
        )
        return env

    def client_environment(self) -> dict[str, str]:
        """What a client (``prefect deploy``, a script, a test) needs to reach this stack."""
        return {
            "PREFECT_API_URL": self.prefect_api_url,
            "PREFECT_UI_API_URL": self.prefect_api_url,
            "PREFECT_UI_URL": self.prefect_url,
            "MLFLOW_TRACKING_URI": self.mlflow_url,
            # The tracking server's database is not reachable through its HTTP API: every night and every
            # rollback against this stack serializes its alias moves on this lock (stairways.promotion).
            "STAIRWAYS_PROMOTION_LOCK": self.promotion_lock,
        }

    def _prefect_server_environment(self) -> dict[str, str]:
        env = self._base_environment() | {"PREFECT_UI_API_URL": self.prefect_api_url}
        if self.settings.prefect_database_url:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = self.settings.prefect_database_url
        return env

    def _mlflow_server_environment(self) -> dict[str, str]:
        # MLflow 3's job runner (GenAI judges, trace rollups: unused here) adds eight ~250 MB processes.
        return self._base_environment() | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}

    def _worker_environment(self) -> dict[str, str]:
        return (
            self._base_environment()
            | self.client_environment()
            | {
                "STAIRWAYS_HOME": str(self.project_dir),
                "PREFECT_LOCAL_STORAGE_PATH": str(self.prefect_home / "storage"),
                "PREFECT_WORKER_QUERY_SECONDS": f"{self.settings.worker_poll_seconds:g}",
            }
            | dict(self.settings.worker_environment)
        )

    def deploy_environment(self) -> dict[str, str]:
        """The environment of ``prefect deploy``: ``STAIRWAYS_HOME`` unset, so the worker resolves it."""
        return self._base_environment() | self.client_environment()

    # -- lifecycle -------------------------------------------------------------------------------------------
    def _start(self, name: str, command: list[str], env: dict[str, str], cwd: Path) -> ServiceProcess:
        service = start_service(
            name, command, env=env, cwd=cwd, log_path=self.state_dir / "logs" / f"{name}.log"
        )
        self.services[name] = service
        return service

    def start(self) -> Self:
        """Start both servers, wait until they are healthy, then start the worker and wait for it."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.mlflow_artifacts_destination.mkdir(parents=True, exist_ok=True)
        atexit.register(self.stop)
        host, timeout = self.settings.host, self.settings.startup_timeout
        try:
            prefect_server = self._start(
                "prefect-server",
                _python_module(
                    "prefect", "server", "start", "--host", host, "--port", str(self.settings.prefect_port)
                ),
                self._prefect_server_environment(),
                self.state_dir,
            )
            mlflow_server = self._start(
                "mlflow-server",
                _python_module(
                    "mlflow",
                    "server",
                    "--host",
                    host,
                    "--port",
                    str(self.settings.mlflow_port),
                    "--workers",
                    str(self.settings.mlflow_workers),
                    "--backend-store-uri",
                    self.mlflow_backend_store_uri,
                    "--serve-artifacts",
                    "--artifacts-destination",
                    str(self.mlflow_artifacts_destination),
                ),
                self._mlflow_server_environment(),
                self.state_dir,
            )
            wait_for_http(f"{self.prefect_api_url}/health", timeout=timeout, service=prefect_server)
            wait_for_http(f"{self.mlflow_url}/health", timeout=timeout, service=mlflow_server)
            if self.settings.worker:
                worker = self._start(
                    "worker",
                    _python_module(
                        "prefect",
                        "worker",
                        "start",
                        "--pool",
                        self.settings.work_pool,
                        "--type",
                        "process",
                        "--install-policy",
                        "never",
                    ),
                    self._worker_environment(),
                    self.project_dir,
                )
                self.wait_for_worker(timeout=timeout, service=worker)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_for_worker(self, *, timeout: float, service: ServiceProcess | None = None) -> None:
        """Wait until a worker of the pool reports ``ONLINE`` to the Prefect API."""
        deadline = time.monotonic() + timeout
        url = f"{self.prefect_api_url}/work_pools/{self.settings.work_pool}/workers/filter"
        while time.monotonic() < deadline:
            if service is not None and not service.running():
                msg = f"the worker exited with code {service.process.returncode}:\n{service.log_tail()}"
                raise StackError(msg)
            try:
                response = httpx.post(url, json={}, timeout=5.0)
            except httpx.HTTPError:
                response = None
            if (
                response is not None
                and response.status_code == 200
                and any(worker.get("status") == "ONLINE" for worker in response.json())
            ):
                return
            time.sleep(0.5)
        tail = service.log_tail() if service is not None else ""
        msg = f"no worker of pool {self.settings.work_pool!r} online after {timeout:.0f} s\n{tail}"
        raise StackError(msg)

    def exited(self) -> list[ServiceProcess]:
        """Services that have stopped running."""
        return [service for service in self.services.values() if not service.running()]

    def stop(self) -> None:
        """Stop the worker first (its flow runs with it), then the servers. Safe to call twice."""
        for name in ("worker", "mlflow-server", "prefect-server"):
            service = self.services.pop(name, None)
            if service is not None:
                code = stop_service(service, grace_seconds=self.settings.stop_grace_seconds)
                _LOGGER.info("stopped %s (exit code %s)", name, code)
        for service in list(self.services.values()):
            stop_service(service, grace_seconds=self.settings.stop_grace_seconds)
        self.services.clear()
        atexit.unregister(self.stop)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def deploy(self, prefect_file: Path | None = None, *, timeout: float = 600.0) -> list[str]:
        """Register every deployment of ``prefect_file`` (default: the project's ``prefect.yaml``)."""
        return deploy(
            prefect_file or self.project_dir / "prefect.yaml", env=self.deploy_environment(), timeout=timeout
        )


def deploy(prefect_file: Path, *, env: Mapping[str, str], timeout: float = 600.0) -> list[str]:
    """``prefect --no-prompt deploy --all`` in the folder of ``prefect_file``; returns the deployments' names.

    ``env`` must hold ``PREFECT_API_URL``. Raises :class:`StackError` with the command's output on failure.
    """
    prefect_file = Path(prefect_file).resolve()
    command = _python_module("prefect", "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file))
    try:
        completed = subprocess.run(
            command,
            cwd=prefect_file.parent,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        msg = f"prefect deploy did not finish within {timeout:.0f} s"
        raise StackError(msg) from error
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr)[-4000:]
        msg = f"prefect deploy failed (exit code {completed.returncode}):\n{output}"
        raise StackError(msg)
    expected = {entry["name"] for entry in yaml.safe_load(prefect_file.read_text()).get("deployments") or []}
    registered = registered_deployments(env["PREFECT_API_URL"])
    missing = expected - {name.split("/", 1)[1] for name in registered}
    if missing:
        msg = f"prefect deploy exited 0 but the API lacks deployments {sorted(missing)}"
        raise StackError(msg)
    return sorted(name for name in registered if name.split("/", 1)[1] in expected)


def registered_deployments(api_url: str) -> list[str]:
    """``flow/deployment`` names of every deployment the Prefect API at ``api_url`` knows."""
    try:
        deployments = (
            httpx.post(f"{api_url}/deployments/filter", json={}, timeout=10.0).raise_for_status().json()
        )
        flows = httpx.post(f"{api_url}/flows/filter", json={}, timeout=10.0).raise_for_status().json()
    except httpx.HTTPError as error:
        msg = f"cannot list deployments at {api_url}: {error}"
        raise StackError(msg) from error
    flow_names = {flow["id"]: flow["name"] for flow in flows}
    return sorted(f"{flow_names.get(entry['flow_id'], '?')}/{entry['name']}" for entry in deployments)


def serve_until_signal(stack: LocalStack, *, poll_seconds: float = 1.0) -> int:
    """Block until SIGINT/SIGTERM (exit code 0) or until a service dies (1); stops the stack either way."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        _LOGGER.info("received %s: stopping the stack", signal.Signals(signum).name)
        stop.set()

    previous = {signum: signal.signal(signum, request_stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(poll_seconds):
            dead = stack.exited()
            if dead:
                for service in dead:
                    _LOGGER.error(
                        "%s exited with code %s; log %s:\n%s",
                        service.name,
                        service.process.returncode,
                        service.log_path,
                        service.log_tail(),
                    )
                return 1
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        stack.stop()


# ------------------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------------------


def _environment_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as error:
        msg = f"{name} must be an integer port, got {raw!r}"
        raise ConfigError(msg) from error


def _up(args: argparse.Namespace) -> int:
    worker_environment = {}
    if args.pushgateway:
        worker_environment["STAIRWAYS_PUSHGATEWAY"] = args.pushgateway
    try:
        settings = StackSettings(
            host=args.host,
            prefect_port=args.prefect_port,
            mlflow_port=args.mlflow_port,
            state_dir=args.state_dir,
            project_dir=args.project_dir,
            prefect_database_url=args.prefect_database_url,
            mlflow_backend_store_uri=args.mlflow_backend_store_uri,
            worker=not args.no_worker,
            worker_environment=worker_environment,
        )
    except ValidationError as error:
        msg = f"invalid settings: {describe_validation_error(error, separator='-', prefix='--')}"
        raise ConfigError(msg) from error
    stack = LocalStack(settings).start()
    if not args.no_deploy:
        try:
            names = stack.deploy()
        except StackError:
            stack.stop()
            raise
        _LOGGER.info("deployed: %s", ", ".join(names))
    print(
        f"Prefect UI      {stack.prefect_url}\n"
        f"MLflow UI       {stack.mlflow_url}\n"
        f"work pool       {settings.work_pool} (worker {'on' if settings.worker else 'off'})\n"
        f"logs            {stack.state_dir / 'logs'}\n"
        f"client env      "
        + " ".join(f"{key}={value}" for key, value in stack.client_environment().items())
        + "\nCtrl+C stops everything.",
        flush=True,
    )
    return serve_until_signal(stack)


def _schedule(args: argparse.Namespace) -> int:
    if args.write:
        first = args.first_year or date.today().year
        write_schedule(args.file, first_year=first, last_year=first + args.years - 1)
        print(f"wrote the nightly schedule for {first}-{first + args.years - 1} to {args.file}")
    problems = check_schedule(args.file)
    for problem in problems:
        print(f"schedule: {problem}", file=sys.stderr)
    if not problems:
        first, last = rrule_years(str(committed_schedule(args.file)["rrule"]))
        print(
            f"the nightly schedule is current: weekdays {NIGHTLY_RUN_TIME:%H:%M} {SCHEDULE_TIMEZONE}, "
            f"NYSE holidays {first}-{last} excluded"
        )
    return 1 if problems else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stairways.serve", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="start the servers and a worker on loopback, deploy, wait for Ctrl+C")
    up.add_argument("--host", default=os.environ.get("STAIRWAYS_HOST", "127.0.0.1"))
    up.add_argument("--prefect-port", type=int, default=_environment_int("STAIRWAYS_PREFECT_PORT", 4200))
    up.add_argument("--mlflow-port", type=int, default=_environment_int("STAIRWAYS_MLFLOW_PORT", 5000))
    up.add_argument(
        "--state-dir", type=Path, default=Path(os.environ.get("STAIRWAYS_STATE_DIR", ".stairways/serve"))
    )
    up.add_argument("--project-dir", type=Path, default=Path.cwd())
    up.add_argument(
        "--prefect-database-url",
        default=os.environ.get("STAIRWAYS_PREFECT_DATABASE_URL"),
        help="postgresql+asyncpg://USER@HOST/DB (default: SQLite in the state folder)",
    )
    up.add_argument(
        "--mlflow-backend-store-uri",
        default=os.environ.get("STAIRWAYS_MLFLOW_BACKEND_STORE_URI"),
        help="postgresql://USER@HOST/DB (default: SQLite in the state folder)",
    )
    up.add_argument("--pushgateway", default=os.environ.get("STAIRWAYS_PUSHGATEWAY"), help="HOST:PORT")
    up.add_argument("--no-deploy", action="store_true", help="do not register the deployments")
    up.add_argument("--no-worker", action="store_true", help="do not start a worker")
    up.set_defaults(handler=_up)

    schedule = commands.add_parser(
        "schedule", help="check (default) or regenerate the nightly holiday schedule"
    )
    schedule.add_argument("--file", type=Path, default=Path("prefect.yaml"))
    schedule.add_argument("--write", action="store_true", help="rewrite the generated block, then check it")
    schedule.add_argument("--first-year", type=int, help="first year of the rule (default: this year)")
    schedule.add_argument(
        "--years", type=int, default=_DEFAULT_SCHEDULE_YEARS, help="years of holidays listed"
    )
    schedule.set_defaults(handler=_schedule)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m stairways.serve up|schedule``: exit code 0 on success."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = _parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except PipelineError as error:
        print(f"stairways serve {args.command}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
