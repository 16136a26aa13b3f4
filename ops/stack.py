"""Supervise the stack like production, on loopback: Prefect server, MLflow tracking server, process worker.

:class:`LocalStack` starts, each bound to a loopback address and in its own process group, the Prefect server
(API and UI; SQLite in the state folder or Postgres), the MLflow tracking server (SQL backend store, serving
artifacts from a folder) and a process worker on the ``stairways-local`` pool, whose flow runs get the
servers' ``PREFECT_API_URL``, ``PREFECT_UI_API_URL``, ``MLFLOW_TRACKING_URI`` and ``STAIRWAYS_HOME`` (the
checkout the deployments' pull step changes directory to). It waits until each is ready
(:func:`~ops.supervisor.wait_for_http`, the worker ``ONLINE``), registers the deployments of ``prefect.yaml``
(:func:`deploy`) and runs until SIGINT or SIGTERM (:func:`serve_until_signal`). Stopping sends SIGTERM to
each group (worker first) and SIGKILL after a grace period (:mod:`ops.supervisor`). ``python -m ops.serve
up`` is its command line; the integration tests drive the same :class:`LocalStack` on
:func:`~ops.supervisor.free_port` ports.
"""

import atexit
import ipaddress
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Self

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ops.supervisor import ServiceProcess, StackError, start_service, stop_service, wait_for_http
from ops.watchdog import process_alive

__all__ = [
    "CLIENT_FILE",
    "DEFAULT_STATE_DIR",
    "DEFAULT_WORK_POOL",
    "LocalStack",
    "StackSettings",
    "deploy",
    "registered_deployments",
    "running_stack_environment",
    "serve_until_signal",
]

_LOGGER = logging.getLogger("ops.stack")

DEFAULT_WORK_POOL = "stairways-local"
DEFAULT_STATE_DIR = Path(".stairways/serve")
CLIENT_FILE = "client.json"
"""A started stack's :meth:`LocalStack.client_environment`, in its state folder while it runs."""
# Settings the children may inherit from the caller; every other PREFECT_*/MLFLOW_* variable is dropped so a
# user profile or a test harness cannot point the stack somewhere else.
_INHERITED_SETTINGS = ("PREFECT_LOGGING_LEVEL",)


class StackSettings(BaseModel):
    """Where and how the local stack runs. Every service binds to ``host``, a loopback address."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field("127.0.0.1", description="Loopback address every service binds to.")
    prefect_port: int = Field(4200, ge=1, le=65535, description="Prefect API and UI port.")
    mlflow_port: int = Field(
        5000, ge=1, le=65535, description="MLflow tracking server (API, UI, artifacts) port."
    )
    state_dir: Path = Field(
        DEFAULT_STATE_DIR,
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
    tune_storage_url: str | None = Field(
        None,
        description="Optuna storage of the tuning studies (`postgresql://...`); None: SQLite in state_dir. The "
        "worker's flow runs get it as STAIRWAYS_TUNE_STORAGE.",
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

    @property
    def client_file(self) -> Path:
        """Where a started stack writes :meth:`client_environment` (removed when it stops)."""
        return self.state_dir / CLIENT_FILE

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
                "STAIRWAYS_STATE_DIR": str(self.state_dir),  # scratch files of flow runs go under it
                "STAIRWAYS_TUNE_STORAGE": self.settings.tune_storage_url
                or f"sqlite:///{self.state_dir / 'optuna.db'}",
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
        # `stairways run` in this checkout finds the running stack here and uses it (no temporary server).
        record = {"pid": os.getpid(), "environment": self.client_environment()}
        self.client_file.write_text(json.dumps(record, indent=2))
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
        self.client_file.unlink(missing_ok=True)
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


def running_stack_environment(state_dir: Path = DEFAULT_STATE_DIR) -> dict[str, str] | None:
    """The client environment of a ``make serve`` stack running from ``state_dir``: its process is alive and
    its Prefect API and MLflow server both answer; None otherwise (no stack, or one killed without cleaning
    up, whose ports something else may have taken since)."""
    try:
        record = json.loads((state_dir / CLIENT_FILE).read_text())
        environment = record["environment"]
        urls = (f"{environment['PREFECT_API_URL']}/health", f"{environment['MLFLOW_TRACKING_URI']}/health")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    pid = record.get("pid")
    if not isinstance(pid, int) or pid <= 0 or not process_alive(pid):
        return None
    try:
        for url in urls:
            httpx.get(url, timeout=2.0).raise_for_status()
    except httpx.HTTPError:
        return None
    return {str(key): str(value) for key, value in environment.items()}
