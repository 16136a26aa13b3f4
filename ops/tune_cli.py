"""``stairways tune``, ``stairways ablate`` and ``stairways walk-forward``: judge configs and the pipeline itself.

Registered on the ``stairways`` command by :mod:`ops.cli`; each handler returns the exit status.
"""

import argparse
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.errors import ConfigError, describe_validation_error
from ops.watchdog import run_watched

__all__ = ["add_tuning_commands"]

ABLATION_STUDY = "stairways-ablation"


def _configs(args: argparse.Namespace) -> tuple[Any, Any]:
    from stairways.config import load_config
    from stairways.tuning.config import load_tune_config

    if args.workers < 1:
        msg = f"--workers must be at least 1, got {args.workers}"
        raise ConfigError(msg)

    base = load_config(args.config)
    overrides = {
        "trials": getattr(args, "trials", None),
        "study_name": args.study,
        "storage": args.storage,
        "seed": args.seed,
    }
    if getattr(args, "seeds", None):
        overrides["ablation_seeds"] = tuple(args.seeds)
    tune = load_tune_config(args.tune_config, overrides=overrides)
    return base, tune


def _tune(args: argparse.Namespace) -> int:
    base, tune = _configs(args)
    from flows.tune import tune as tune_flow

    summary = run_watched(lambda: tune_flow(tune_config=tune, config=base, workers=args.workers))
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    pbo = (summary.get("pbo") or {}).get("pbo")
    dsr = (summary.get("deflated_sharpe") or {}).get("probability")
    print(
        f"study {summary['study_name']!r} ({summary['storage']}): {summary['trials_complete']} complete, "
        f"{summary['trials_pruned']} pruned, {summary['trials_failed']} failed; best trial {summary['best_trial']} "
        f"(score {_figure(summary['best_score'])}); PBO {_figure(pbo)}, deflated Sharpe {_figure(dsr)}"
    )
    if summary["recommended"]:
        print(
            f"recommended: trial {summary['best_trial']}; MLflow run {summary['mlflow_run_id']}, study/recommended.yaml"
        )
    else:
        print("nothing recommended: " + "; ".join(summary["reasons"]))
    return 0


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _ablate(args: argparse.Namespace) -> int:
    from stairways.tuning.config import TuneConfig

    base, tune = _configs(args)
    if tune.study_name == TuneConfig.model_fields["study_name"].default:
        tune = tune.model_copy(update={"study_name": ABLATION_STUDY})  # its own study unless one is named
    from flows.tune import ablate

    summary = run_watched(
        lambda: ablate(tune_config=tune, config=base, workers=args.workers, single_sets=args.single_sets)
    )
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _walk_forward(args: argparse.Namespace) -> int:
    from stairways.config import load_config
    from stairways.walk_forward import WalkForwardConfig, run_walk_forward

    base = load_config(args.config)
    try:
        settings = WalkForwardConfig(nights=args.nights, step_sessions=args.step_sessions)
    except ValidationError as error:
        msg = f"invalid walk-forward settings: {describe_validation_error(error, separator='-', prefix='--')}"
        raise ConfigError(msg) from None
    report = run_walk_forward(base, settings, output_dir=args.output)
    written = report.write(args.output)
    print(report.table())
    print("written: " + ", ".join(str(path) for path in written))
    return 0


def _study_options(command: argparse.ArgumentParser, *, default_study: str) -> None:
    command.add_argument(
        "--config", type=Path, help="YAML file of nightly config overrides (the base recipe)"
    )
    command.add_argument(
        "--tune-config", type=Path, help="YAML file of tuning settings (stairways.tuning.config)"
    )
    command.add_argument(
        "--study", help=f"Optuna study name (default {default_study}); an existing one resumes"
    )
    command.add_argument(
        "--storage",
        help="Optuna storage URL (default: SQLite optuna.db beside the MLflow store; or postgresql://)",
    )
    command.add_argument("--seed", type=int, help="sampler seed (default 0)")
    command.add_argument(
        "--workers", type=int, default=1, help="worker processes on this machine (default 1)"
    )


def add_tuning_commands(commands: Any) -> None:
    """Add ``tune``, ``ablate`` and ``walk-forward`` to the ``stairways`` subcommands."""
    tune = commands.add_parser(
        "tune", help="run (or resume) an Optuna study over the nightly recipe's settings"
    )
    _study_options(tune, default_study="stairways-tune")
    tune.add_argument("--trials", type=int, help="finished trials the study runs to (default 20)")
    tune.add_argument("--json", action="store_true", help="print the whole analysis as JSON")
    tune.set_defaults(handler=_tune)

    ablate = commands.add_parser(
        "ablate", help="score every feature set off in turn; each set's effect with a CI"
    )
    _study_options(ablate, default_study=ABLATION_STUDY)
    ablate.add_argument("--seeds", type=int, nargs="+", help="seeds per grid point (default 7 8)")
    ablate.add_argument("--single-sets", action="store_true", help="also score each feature set alone")
    ablate.set_defaults(handler=_ablate)

    walk = commands.add_parser(
        "walk-forward", help="run the whole nightly recipe over rolling windows: what it would have promoted"
    )
    walk.add_argument("--config", type=Path, help="YAML file of nightly config overrides")
    walk.add_argument("--nights", type=int, default=4, help="nights to replay (default 4)")
    walk.add_argument("--step-sessions", type=int, default=5, help="sessions between nights (default 5)")
    walk.add_argument("--output", type=Path, default=Path("walk-forward"), help="folder for the report")
    walk.set_defaults(handler=_walk_forward)
