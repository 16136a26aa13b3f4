"""Run the stack like production, on loopback: Prefect server, MLflow tracking server, process worker.

``python -m ops.serve up`` (``make serve``) starts the local stack of :mod:`ops.stack` bound to
127.0.0.1: the Prefect server (API and UI) on a SQLite database in the state folder, or on Postgres with
``--prefect-database-url postgresql+asyncpg://...``; the MLflow tracking server with a SQL backend store
(SQLite in the state folder, or ``--mlflow-backend-store-uri postgresql://...``); a Prefect process worker on
the ``stairways-local`` pool. It then registers the deployments of ``prefect.yaml`` (``prefect --no-prompt
deploy --all``) and waits for SIGINT or SIGTERM, which stop every service.

``python -m ops.serve schedule`` (``make schedule``) checks the nightly schedule of ``prefect.yaml``
against :mod:`ops.schedule`: weekdays 17:30 New York, holidays skipped by the flow itself.
"""

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from core.errors import ConfigError, PipelineError, describe_validation_error
from ops.schedule import NIGHTLY_CRON, SCHEDULE_TIMEZONE, check_schedule
from ops.stack import LocalStack, StackSettings, serve_until_signal
from ops.supervisor import StackError

__all__ = ["main"]

_LOGGER = logging.getLogger("ops.serve")


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
            tune_storage_url=args.tune_storage,
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
    problems = check_schedule(args.file)
    for problem in problems:
        print(f"schedule: {problem}", file=sys.stderr)
    if not problems:
        print(
            f"the nightly schedule is current: cron {NIGHTLY_CRON!r} in {SCHEDULE_TIMEZONE}; "
            "runs scheduled on NYSE holidays skip themselves"
        )
    return 1 if problems else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ops.serve", description=__doc__.split("\n\n")[0])
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
    up.add_argument(
        "--tune-storage",
        default=os.environ.get("STAIRWAYS_TUNE_STORAGE"),
        help="Optuna storage of the tuning studies, postgresql://USER@HOST/DB (default: SQLite in the state folder)",
    )
    up.add_argument("--pushgateway", default=os.environ.get("STAIRWAYS_PUSHGATEWAY"), help="HOST:PORT")
    up.add_argument("--no-deploy", action="store_true", help="do not register the deployments")
    up.add_argument("--no-worker", action="store_true", help="do not start a worker")
    up.set_defaults(handler=_up)

    schedule = commands.add_parser("schedule", help="check the nightly schedule of prefect.yaml")
    schedule.add_argument("--file", type=Path, default=Path("prefect.yaml"))
    schedule.set_defaults(handler=_schedule)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ops.serve up|schedule``: exit code 0 on success."""
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
