"""Tuning throughput: trials per hour, what the median pruner saves, and 1 vs 2 workers.

Run from the repository root: ``python benchmarks/bench_tune.py [--trials N] [--quick] [--output FILE]``.
Writes ``bench-results/tune.json`` and prints a table. ``--quick`` swaps in a tiny recipe (16 synthetic
sessions, 2 folds x 2 cycles x 256 steps: seconds a trial) to check that the script works, and writes
``bench-results/tune-quick.json`` instead; its figures say nothing about the real budget.

Three studies of ``--trials`` trials each (default 6), all with the same study name and sampler seed, each in
its own fresh SQLite file and its own Python process (so one arm's warm caches and JIT compiles do not help the
next), run by :func:`stairways.tuning.run_study`:

* ``median-1w``: the default trial budget: ``RetrainConfig()`` (60 synthetic sessions) and ``TuneConfig()``
  defaults (3 folds x 5 judged sessions, 2 cycles x 6,000 steps per fold, TPE, median pruner), 1 worker.
* ``none-1w``: the same study with ``pruner: none``, 1 worker.
* ``none-2w``: the same study with ``pruner: none``, 2 worker processes.

Measured, side by side on this machine:

* (a) **trials per hour** with the default budget: finished trials (complete or pruned) over the wall time
  of ``run_study`` (``median-1w``; the other arms' figures beside it).
* (b) **pruning's saving**: ``none-1w`` vs ``median-1w``: wall seconds, training cycles run (the sum over
  trials of ``len(trial.intermediate_values)``: one report per cycle) against the budget (trials x folds x
  cycles), trials pruned, and the best score of each. With the defaults the pruner waits for
  ``startup_trials`` (5) finished trials before it may stop one, and TPE draws its first ``startup_trials``
  trials at random from the seed whatever happened before, so those trials are the same in both arms (the
  table says how many trials drew the same parameters); only later trials can be pruned or differ.
* (c) **1 vs 2 workers**: ``none-1w`` vs ``none-2w`` (no pruner, so both do the same amount of work per
  trial): wall seconds each and the speedup ``wall(1 worker) / wall(2 workers)``. With 2 workers
  ``run_study`` starts two fresh interpreters (imports and data preparation are inside the wall time, as in
  real use; ``startup s`` is the time until the first trial started). The two workers draw different
  trials (seeds ``seed`` and ``seed + 1``), so the trials' costs differ between the arms.

The machine's CPU count and load average (before and after the run, and the 1-minute load at the start and
end of every arm, ``load 1m``) are recorded: the arms run one after the other, so other jobs on the machine
skew their wall times differently; on a loaded or 2-core machine two workers also compete for the cores and
the speedup is bounded accordingly. ``trial s med`` (median seconds a trial took) shows that contention.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = ["main", "run_arm"]

ARMS: dict[str, dict[str, Any]] = {
    "median-1w": {"pruner": "median", "workers": 1},
    "none-1w": {"pruner": "none", "workers": 1},
    "none-2w": {"pruner": "none", "workers": 2},
}
STUDY_NAME = "bench-tune"
# The tiny recipe of --quick (the tuning tests' recipe): seconds a trial.
QUICK_BASE: dict[str, Any] = {
    "seed": 3,
    "data": {"synthetic": {"sessions": 16}},
    "window": {"selection_sessions": 2, "test_sessions": 2, "min_train_sessions": 3},
    "training": {"ppo": {"n_envs": 2, "n_steps": 64, "batch_size": 64}},
}
QUICK_TUNE: dict[str, Any] = {
    "folds": 2,
    "fold_sessions": 2,
    "fold_selection_sessions": 2,
    "cycles": 2,
    "steps_per_cycle": 256,
    "pbo_partitions": 2,
    "startup_trials": 2,
}


def _recipe(*, quick: bool, trials: int, pruner: str, storage_url: str) -> Any:
    from stairways.config import RetrainConfig, load_config
    from stairways.tuning import StudyRecipe, TuneConfig

    base = load_config(overrides=QUICK_BASE) if quick else RetrainConfig()
    tune = TuneConfig(**(QUICK_TUNE if quick else {}), study_name=STUDY_NAME, trials=trials, pruner=pruner)
    return StudyRecipe(base=base, tune=tune, storage_url=storage_url)


def run_arm(*, quick: bool, trials: int, pruner: str, workers: int, storage_url: str) -> dict[str, Any]:
    """One study from scratch with ``run_study``; its wall time and every trial's figures."""
    from stairways.tuning import run_study
    from stairways.tuning.study import finished_trials

    recipe = _recipe(quick=quick, trials=trials, pruner=pruner, storage_url=storage_url)
    started_at = datetime.now()  # Optuna stores trial start times as local naive datetimes
    started = time.perf_counter()
    study = run_study(recipe, workers=workers)
    wall = time.perf_counter() - started
    trials_all = sorted(study.get_trials(deepcopy=False), key=lambda trial: trial.number)
    finished = finished_trials(study)
    starts = [trial.datetime_start for trial in trials_all if trial.datetime_start is not None]
    complete = [trial for trial in finished if trial.state.name == "COMPLETE"]
    best = max(complete, key=lambda trial: trial.value) if complete else None
    tune = recipe.tune
    return {
        "pruner": pruner,
        "workers": workers,
        "trials_requested": trials,
        "wall_seconds": wall,
        "startup_seconds": (min(starts) - started_at).total_seconds() if starts else None,
        "finished": len(finished),
        "complete": len(complete),
        "pruned": sum(trial.state.name == "PRUNED" for trial in finished),
        "overflow": sum(bool(trial.user_attrs.get("overflow")) for trial in trials_all),
        "failed": sum(
            trial.state.name == "FAIL" and not trial.user_attrs.get("overflow") for trial in trials_all
        ),
        "trials_per_hour": len(finished) / wall * 3600.0,
        "cycles_run": sum(len(trial.intermediate_values) for trial in finished),
        "cycles_budget": len(finished) * tune.folds * (tune.cycles or recipe.base.training.cycles),
        "trial_seconds_sum": sum(float(trial.user_attrs.get("wall_seconds", 0.0)) for trial in finished),
        "trial_seconds_median": statistics.median(
            float(trial.user_attrs.get("wall_seconds", 0.0)) for trial in finished
        )
        if finished
        else None,
        "best_score": None if best is None else float(best.value),
        "best_trial": None if best is None else best.number,
        "trials": [
            {
                "number": trial.number,
                "state": trial.state.name,
                "value": trial.value,
                "cycles": len(trial.intermediate_values),
                "wall_seconds": trial.user_attrs.get("wall_seconds"),
                "worker": trial.user_attrs.get("worker"),
                "params": trial.params,
            }
            for trial in finished
        ],
    }


def _run_in_process(arm: str, *, quick: bool, trials: int, storage_url: str) -> dict[str, Any]:
    """The arm in a fresh interpreter (``--arm``); its JSON result is the last stdout line."""
    command = [sys.executable, str(Path(__file__).resolve()), "--arm", arm, "--trials", str(trials)]
    command += ["--storage", storage_url] + (["--quick"] if quick else [])
    result = subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _same_params(first: dict[str, Any], second: dict[str, Any]) -> int:
    """Leading trials (by number) that drew the same parameters in both arms."""
    same = 0
    for one, other in zip(first["trials"], second["trials"], strict=False):
        if one["params"] != other["params"]:
            break
        same += 1
    return same


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def compare(arms: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """(a) trials per hour, (b) pruning's saving, (c) the 2-worker speedup, from the arms that ran."""
    result: dict[str, Any] = {}
    if "median-1w" in arms:
        result["trials_per_hour_default_budget"] = arms["median-1w"]["trials_per_hour"]
    if "median-1w" in arms and "none-1w" in arms:
        median, none = arms["median-1w"], arms["none-1w"]
        result["pruning"] = {
            "wall_seconds_none": none["wall_seconds"],
            "wall_seconds_median": median["wall_seconds"],
            "wall_saving_fraction": 1.0 - median["wall_seconds"] / none["wall_seconds"],
            "cycles_none": none["cycles_run"],
            "cycles_median": median["cycles_run"],
            "cycles_saving_fraction": 1.0 - _ratio(median["cycles_run"], none["cycles_run"])
            if none["cycles_run"]
            else None,
            "trials_pruned": median["pruned"],
            "best_score_none": none["best_score"],
            "best_score_median": median["best_score"],
            "leading_trials_with_same_params": _same_params(none, median),
        }
    if "none-1w" in arms and "none-2w" in arms:
        one, two = arms["none-1w"], arms["none-2w"]
        result["workers"] = {
            "wall_seconds_1": one["wall_seconds"],
            "wall_seconds_2": two["wall_seconds"],
            "speedup": one["wall_seconds"] / two["wall_seconds"],
            "trial_seconds_median_1": one["trial_seconds_median"],
            "trial_seconds_median_2": two["trial_seconds_median"],
            "trials_per_worker_2": _per_worker(two),
        }
    return result


def _per_worker(arm: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in arm["trials"]:
        index = str(trial["worker"]).rsplit(":", 1)[-1]
        counts[index] = counts.get(index, 0) + 1
    return dict(sorted(counts.items()))


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _table(arms: dict[str, dict[str, Any]]) -> str:
    header = (
        f"{'arm':10s} {'workers':>7s} {'finished':>8s} {'pruned':>6s} {'wall s':>8s} {'startup s':>9s} "
        f"{'trials/h':>8s} {'cycles':>9s} {'trial s med':>11s} {'best score':>10s} {'load 1m':>11s}"
    )
    lines = [header, "-" * len(header)]
    for name, arm in arms.items():
        lines.append(
            f"{name:10s} {arm['workers']:>7d} {arm['finished']:>8d} {arm['pruned']:>6d} "
            f"{arm['wall_seconds']:8.1f} {_number(arm['startup_seconds'], '9.1f'):>9s} "
            f"{arm['trials_per_hour']:8.1f} {arm['cycles_run']:>4d}/{arm['cycles_budget']:<4d} "
            f"{_number(arm['trial_seconds_median'], '11.1f'):>11s} {_number(arm['best_score'], '10.4f'):>10s} "
            f"{arm['load_1min'][0]:5.2f}>{arm['load_1min'][1]:<5.2f}"
        )
    return "\n".join(lines)


def _summary_lines(comparison: dict[str, Any]) -> list[str]:
    lines = []
    if "trials_per_hour_default_budget" in comparison:
        lines.append(
            f"(a) trials per hour, median pruner, 1 worker: {comparison['trials_per_hour_default_budget']:.1f}"
        )
    pruning = comparison.get("pruning")
    if pruning:
        lines.append(
            f"(b) pruning: wall {pruning['wall_seconds_none']:.1f} s (none) vs {pruning['wall_seconds_median']:.1f} s "
            f"(median), saving {pruning['wall_saving_fraction']:+.1%}; cycles {pruning['cycles_none']} vs "
            f"{pruning['cycles_median']} (saving {_number(pruning['cycles_saving_fraction'], '+.1%')}); "
            f"{pruning['trials_pruned']} pruned; best score {_number(pruning['best_score_none'], '.4f')} vs "
            f"{_number(pruning['best_score_median'], '.4f')}; first {pruning['leading_trials_with_same_params']} "
            "trials drew the same parameters in both"
        )
    workers = comparison.get("workers")
    if workers:
        lines.append(
            f"(c) workers: 1 worker {workers['wall_seconds_1']:.1f} s, 2 workers {workers['wall_seconds_2']:.1f} s, "
            f"speedup x{workers['speedup']:.2f} (median trial {_number(workers['trial_seconds_median_1'], '.1f')} s "
            f"vs {_number(workers['trial_seconds_median_2'], '.1f')} s; trials per worker {workers['trials_per_worker_2']})"
        )
    return lines


def _machine() -> dict[str, Any]:
    import optuna
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average": list(os.getloadavg()),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "optuna": optuna.__version__,
        "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the arms, write ``bench-results/tune.json``, print the table; exit 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6, help="trials of every study (default 6)")
    parser.add_argument(
        "--quick", action="store_true", help="a tiny recipe: checks the script, not the budget"
    )
    parser.add_argument(
        "--output", type=Path, help="default bench-results/tune.json (tune-quick.json with --quick)"
    )
    parser.add_argument("--arms", nargs="*", choices=list(ARMS), default=list(ARMS))
    parser.add_argument("--arm", choices=list(ARMS), help=argparse.SUPPRESS)
    parser.add_argument("--storage", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error("--trials must be >= 1")
    if args.output is None:
        args.output = ROOT / "bench-results" / ("tune-quick.json" if args.quick else "tune.json")

    if args.arm is not None:  # one arm, in its own interpreter (see _run_in_process)
        import logging

        logging.basicConfig(
            level=logging.INFO, format=f"%(asctime)s {args.arm}: %(message)s", stream=sys.stderr
        )
        arm = ARMS[args.arm]
        result = run_arm(
            quick=args.quick,
            trials=args.trials,
            pruner=arm["pruner"],
            workers=arm["workers"],
            storage_url=args.storage,
        )
        print(json.dumps(result, default=str))
        return 0

    machine = _machine()
    print(
        f"cpu_count {machine['cpu_count']} (usable {machine['cpus_usable']}), load average "
        f"{' '.join(f'{value:.2f}' for value in machine['load_average'])}; "
        f"{'quick (tiny recipe)' if args.quick else 'default budget'}, {args.trials} trials per arm",
        flush=True,
    )
    arms: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-tune-") as work:
        for name in args.arms:
            storage_url = f"sqlite:///{Path(work) / f'{name}.db'}"  # every arm: a fresh file and study
            print(f"{name}: {ARMS[name]['workers']} worker(s), pruner {ARMS[name]['pruner']} ...", flush=True)
            load_before = os.getloadavg()[0]
            arms[name] = _run_in_process(name, quick=args.quick, trials=args.trials, storage_url=storage_url)
            arms[name]["load_1min"] = [load_before, os.getloadavg()[0]]  # other jobs skew the wall times
            print(
                f"{name}: {arms[name]['finished']} trials in {arms[name]['wall_seconds']:.1f} s "
                f"({arms[name]['pruned']} pruned)",
                flush=True,
            )
    machine["load_average_after"] = list(os.getloadavg())
    comparison = compare(arms)
    print()
    print(_table(arms))
    print()
    for line in _summary_lines(comparison):
        print(line)
    print(
        f"machine: cpu_count {machine['cpu_count']}, load average before "
        f"{' '.join(f'{v:.2f}' for v in machine['load_average'])}, after "
        f"{' '.join(f'{v:.2f}' for v in machine['load_average_after'])}"
    )
    report = {
        "quick": args.quick,
        "trials": args.trials,
        "machine": machine,
        "comparison": comparison,
        "arms": arms,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"written: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
