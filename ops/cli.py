"""The ``stairways`` command: ``run`` the nightly flow, ``qc`` an export, ``rollback`` the champion, ``serve``;
``tune``, ``ablate`` and ``walk-forward`` (:mod:`ops.tune_cli`)."""

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.errors import ConfigError, PipelineError
from ops.tune_cli import add_tuning_commands

__all__ = ["main"]

_TICKER = re.compile(r"[A-Z0-9][A-Z0-9.\-]{0,14}")


_PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "INFO",
    # Prefect waits 20 s for its temporary server; a first run (database migrations) on a busy 2-core machine
    # can take longer, and the night then fails before it starts.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


class _ExpectedFailures(logging.Filter):
    """Drop the traceback from log records of expected failures (a ``PipelineError``): the CLI prints them
    as one line; unexpected errors keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], PipelineError):
            record.exc_info = None
            record.exc_text = None
        return True


def _symbol_paths(pairs: Sequence[str]) -> dict[str, str]:
    paths: dict[str, str] = {}
    for pair in pairs:
        symbol, separator, path = pair.partition("=")
        symbol = symbol.strip()
        if not separator or not symbol or not path:
            msg = f"expected SYMBOL=PATH, got {pair!r}"
            raise ConfigError(msg)
        if symbol != "*" and not _TICKER.fullmatch(symbol.upper()):
            msg = f"{symbol!r} is not a ticker (letters, digits, '.', '-'; e.g. NVDA=exports/nvda.csv)"
            raise ConfigError(msg)
        # Tickers are case-insensitive: nvda and NVDA are one symbol, written the exchange's way.
        symbol = symbol.upper()
        if symbol in paths:
            msg = f"symbol {symbol!r} is given twice"
            raise ConfigError(msg)
        paths[symbol] = path
    return paths


def _export_overrides(args: argparse.Namespace) -> dict[str, Any]:
    export: dict[str, Any] = {}
    if args.timezone:
        export["timezone"] = args.timezone
    if args.bar_label:
        export["bar_label"] = args.bar_label
    if args.bar_minutes is not None:
        if args.bar_minutes < 1:
            msg = f"--bar-minutes must be a whole number of minutes >= 1, got {args.bar_minutes}"
            raise ConfigError(msg)
        export["bar_minutes"] = args.bar_minutes
    return export


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {}
    export = _export_overrides(args)
    if export:
        data["export"] = export
    if args.data:
        paths = _symbol_paths(args.data)
        data["source"] = "export"
        data["export_paths"] = paths
        named = [symbol for symbol in paths if symbol != "*"]
        if len(named) == 2:
            return {"data": data, "symbols": named}
    return {"data": data} if data else {}


def _use_running_stack(args: argparse.Namespace) -> None:
    """Run against ``make serve``'s servers when they are up and nothing else is configured: the night then
    shows in the Prefect and MLflow UIs, and no temporary Prefect server has to start."""
    if args.local or os.environ.get("MLFLOW_TRACKING_URI"):
        return
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():  # set in the environment or in the user's Prefect profile
        return
    from ops.stack import running_stack_environment

    environment = running_stack_environment()
    if environment is None:
        return
    os.environ.update(environment)
    print(
        f"using the running stack (make serve): Prefect {environment['PREFECT_UI_URL']}, "
        f"MLflow {environment['MLFLOW_TRACKING_URI']}; --local for a temporary server and ./mlflow.db",
        file=sys.stderr,
    )


def _run(args: argparse.Namespace) -> int:
    from stairways.config import load_config

    _use_running_stack(args)
    config = load_config(args.config, overrides=_overrides(args))
    from flows.retrain import nightly_retrain
    from ops.watchdog import run_watched

    summary = run_watched(lambda: nightly_retrain(config))
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _night_problem(prepared: Any, config: Any) -> str | None:
    """Why the night could not split these bars into its windows (features built as the night would)."""
    from stairways.pipeline import features_for, split_windows

    try:
        split_windows(features_for(prepared, config), config)
    except ConfigError as error:
        return str(error)
    return None


def _qc(args: argparse.Namespace) -> int:
    from market.loading import load_export
    from stairways.config import load_config
    from stairways.pipeline import prepare_bars, quality_check

    paths = _symbol_paths(args.exports)
    named = [symbol for symbol in paths if symbol != "*"]
    overrides: dict[str, Any] = {"data": {"source": "export", "export_paths": paths}}
    if len(named) == 2:
        overrides["symbols"] = named
    if export := _export_overrides(args):
        overrides["data"]["export"] = export
    config = load_config(args.config, overrides=overrides)
    bars = load_export(paths, spec=config.data.export)
    # The night's own requirements: both configured symbols, and the history its windows need.
    prepared = prepare_bars(bars, config)
    print(
        f"loaded {bars.height} rows; {prepared.bars.height} after normalization ({prepared.bar_minutes}-min bars)"
    )
    for line in prepared.repair_lines():
        print(f"  repair: {line}")
    report = quality_check(prepared, config)
    if args.report:
        Path(args.report).write_text(report.to_markdown(prepared.repairs))
        print(f"report written to {args.report}")
    if report.passed:
        problem = _night_problem(prepared, config)
        if problem is not None:
            print(f"QC FAILED: the expectation suite passed, but the night cannot use these bars: {problem}")
            return 1
        print(f"QC PASSED ({report.suite_name} {report.suite_version}): {report.statistics}")
        return 0
    print(f"QC FAILED ({report.suite_name} {report.suite_version}):")
    for failure in report.failures:
        print(f"  - {failure}")
    return 1


def _rollback(args: argparse.Namespace) -> int:
    from stairways.config import load_config
    from stairways.rollback import rollback
    from stairways.tracking import resolve_tracking_uri

    config = load_config(args.config)
    model_name = args.model or config.registry.model_name
    record = rollback(
        resolve_tracking_uri(config.tracking.tracking_uri),
        model_name,
        to_version=args.to,
        reason=args.reason,
        force=args.force,
        lock=config.registry.promotion_lock,
    )
    demoted = f"version {record.rolled_back}" if record.rolled_back else "no version"
    forced = " (forced past a failed gate)" if record.forced else ""
    print(
        f"'{model_name}': champion is now version {record.champion}{forced} ({demoted} demoted; "
        f"previous-champion: {record.previous_champion or 'none'}); reason recorded: {record.reason} "
        f"(event run {record.event_run_id})"
    )
    return 0


def _fetch_model(args: argparse.Namespace) -> int:
    from stairways.config import load_config
    from stairways.registry import download_verified
    from stairways.tracking import resolve_tracking_uri

    config = load_config(args.config)
    model_name = args.model or config.registry.model_name
    reference = (
        f"models:/{model_name}/{args.version}" if args.version else f"models:/{model_name}@{args.alias}"
    )
    destination = Path(args.to)
    if destination.exists() and any(destination.iterdir()):
        msg = f"--to {destination} is not empty: give a new or empty folder"
        raise ConfigError(msg)
    local, version = download_verified(
        reference, tracking_uri=resolve_tracking_uri(config.tracking.tracking_uri), destination=destination
    )
    # `mlflow models serve` starts `uvicorn` from PATH: the command puts this environment's bin folder first.
    bin_dir = Path(sys.executable).parent
    print(
        f"version {version.version} of '{model_name}' ({reference}) verified, every file against its SHA-256: "
        f"{local}\nserve it: PATH={bin_dir}:$PATH {bin_dir}/mlflow models serve -m {local} --env-manager local "
        "--host 127.0.0.1 --port 5001"
    )
    return 0


def _status(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from ops.schedule import next_night
    from stairways.config import load_config
    from stairways.status import read_status, status_text

    if args.nights < 1:
        msg = f"--nights must be at least 1, got {args.nights}"
        raise ConfigError(msg)
    config = load_config(args.config)
    status = read_status(config, nights=args.nights, next_night=next_night(datetime.now(UTC)))
    print(status.to_json() if args.json else status_text(status))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stairways", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def export_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--config", type=Path, help="YAML file of config overrides by field name")
        command.add_argument("--timezone", help="time zone of naive timestamps (default America/New_York)")
        command.add_argument(
            "--bar-label", choices=("start", "end"), help="timestamps label bar start or end"
        )
        command.add_argument("--bar-minutes", type=int, help="bar size in minutes (default: inferred)")

    run = commands.add_parser("run", help="run the nightly retrain flow once, locally")
    export_options(run)
    run.add_argument(
        "--data", nargs="+", metavar="SYMBOL=PATH", help="CSV/Parquet export per symbol (default: synthetic)"
    )
    run.add_argument(
        "--local",
        action="store_true",
        help="a temporary Prefect server and the local MLflow store even when `make serve` is running",
    )
    run.set_defaults(handler=_run)

    qc = commands.add_parser("qc", help="normalize and quality-check an export; exit 0 on pass, 1 on fail")
    qc.add_argument(
        "exports", nargs="+", metavar="SYMBOL=PATH", help="export file per symbol ('*=PATH': long file)"
    )
    export_options(qc)
    qc.add_argument("--report", type=Path, help="write the markdown QC report to this file")
    qc.set_defaults(handler=_qc)

    back = commands.add_parser(
        "rollback", help="move the registry's champion alias back to previous-champion (or a named version)"
    )
    back.add_argument("--to", metavar="VERSION", help="version to restore (default: previous-champion)")
    back.add_argument(
        "--reason", required=True, help="why (not empty); recorded on the versions and in a run"
    )
    back.add_argument(
        "--force", action="store_true", help="restore a version even though its gate failed (recorded)"
    )
    back.add_argument("--model", help="registered model name (default: registry.model_name of the config)")
    back.add_argument("--config", type=Path, help="YAML file of config overrides by field name")
    back.set_defaults(handler=_rollback)

    fetch = commands.add_parser(
        "fetch-model", help="download a registered version and verify every file before anything reads it"
    )
    which = fetch.add_mutually_exclusive_group()
    which.add_argument("--version", help="version number (default: the --alias)")
    which.add_argument("--alias", default="champion", help="alias to resolve (default: champion)")
    fetch.add_argument("--to", required=True, type=Path, help="new or empty folder for the verified copy")
    fetch.add_argument("--model", help="registered model name (default: registry.model_name of the config)")
    fetch.add_argument("--config", type=Path, help="YAML file of config overrides by field name")
    fetch.set_defaults(handler=_fetch_model)

    status = commands.add_parser(
        "status", help="champion and previous champion, the last nights, stuck runs, the next scheduled night"
    )
    status.add_argument("--nights", type=int, default=5, help="how many recent nights to list (default 5)")
    status.add_argument("--json", action="store_true", help="print it as JSON")
    status.add_argument("--config", type=Path, help="YAML file of config overrides by field name")
    status.set_defaults(handler=_status)

    add_tuning_commands(commands)

    commands.add_parser(
        "serve",
        help="the local production stack: `serve up` (Prefect server + UI, MLflow server, worker, deployments), "
        "`serve schedule` (checks the nightly cron in prefect.yaml); see `stairways serve -h`",
        add_help=False,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stairways`` console command."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["serve"]:
        from ops.serve import main as serve_main

        return serve_main(arguments[1:])
    # The Makefile's Prefect defaults, for a CLI started without it (no telemetry from the temporary server).
    for key, value in _PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    args = _parser().parse_args(arguments)
    quiet = _ExpectedFailures()
    logging.getLogger().addFilter(quiet)
    for name in ("prefect", "prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).addFilter(quiet)
    try:
        return int(args.handler(args))
    except PipelineError as error:
        notes = "".join(f" ({note})" for note in getattr(error, "__notes__", []))
        print(f"stairways {args.command}: {type(error).__name__}: {error}{notes}", file=sys.stderr)
        return 1
    except OSError as error:
        # A full or read-only disk, an unreachable store: the storage's own words, one line, no traceback.
        where = f" ({error.filename})" if error.filename else ""
        print(f"stairways {args.command}: storage error: {error.strerror or error}{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
