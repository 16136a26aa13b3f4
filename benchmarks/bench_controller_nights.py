"""Does the reward controller help? Default nights over seeds: controller off, the previous design, this one.

Run from the repository root: ``python benchmarks/bench_controller_nights.py [--seeds S ...]
[--previous-commit SHA]`` (writes ``bench-results/controller_nights.json`` and prints a table). About a
minute a night on 2 cores; three arms per seed.

Each night is the nightly flow's plain functions without Prefect or MLflow (as ``benchmarks/bench_gate.py``):
the default config and market (60 sessions of the synthetic ``regimes`` market), seed ``S``, except:

* ``off``: ``training.controller.enabled: false``: no hold bonus, no ticket cost; the reward is the PnL.
* ``previous``: the controller design before it regulated the greedy policy (commit ``--previous-commit``,
  extracted with ``git archive`` into a temporary folder and run there in a subprocess): it regulated the
  sampled hold-action share to 0.55 per env step.
* ``greedy``: this tree's defaults: the greedy policy's trades per day, per rollout and per cycle.
* ``--target-sweep`` (default 10 and 20): the ``greedy`` arm again with other base targets, to show that the
  deployed trades per day move where the target says (the default arm is the target 15 point).

For every night the best cycle's checkpoint is re-evaluated by this tree's code on the selection window
(greedy, the deployed behaviour): trades per day and its error to the target, the idle share (steps without
an order) and its error to the idle target ``1 - target / decisions per session``, and the ``hold/hold``
share; and the night's controller health score (``controllers.health``; not for the previous tree). The test window gives return, Sharpe, drawdown and the gate verdict (each arm judged by its own tree).
The goal for ``greedy``: trades per day inside [5, 25] and idle share within 0.10 of target in at least 4 of 5
seeds, with a mean test return no worse than ``off``.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

TREE = Path(os.environ.get("STAIRWAYS_TREE", Path(__file__).resolve().parents[1]))
ROOT = Path(__file__).resolve().parents[1]
if str(TREE) not in sys.path:
    sys.path.insert(0, str(TREE))

__all__ = ["main", "night"]

PREVIOUS_COMMIT = "dfd2e43"
ARMS = ("off", "previous", "greedy")
TEST_FIGURES = ("total_return_pct", "sharpe", "max_drawdown_pct", "trades_per_day")


def _night_data(config: Any) -> tuple[Any, Any, Any]:
    """The night's prepared bars, signal and training data, by the pipeline functions of the tree in use."""
    from stairways import pipeline

    market = pipeline.load_market(config)
    prepared = pipeline.prepare_bars(market.bars, config)
    features = pipeline.features_for(prepared, config)
    labels = pipeline.labels_for(prepared, config)
    plan = pipeline.split_windows(features, config)
    signal = pipeline.signal_for(features, labels, plan, config)
    return prepared, signal, pipeline.training_data(prepared, features, signal, plan, config)


def night(
    seed: int, *, controller_enabled: bool, output_dir: Path, target: float | None = None
) -> dict[str, Any]:
    """One default night with the tree on ``sys.path``; keeps the best checkpoint under ``output_dir``.

    Uses only functions that exist in both trees (the pipeline, ``run_cycles``, ``assess``, ``judge``).
    """
    from stairways.assessment import REPLAY_SCENARIO, ChampionInput, assess, build_scenarios, judge
    from stairways.config import RetrainConfig
    from training.cycles import run_cycles

    training: dict[str, Any] = {"progress_bar": False}
    if not controller_enabled:
        training["controller"] = {"enabled": False}
    elif target is not None:
        training["controller"] = {"target_trades_per_day": target}
    config = RetrainConfig.model_validate({"seed": seed, "training": training})
    started = time.perf_counter()
    prepared, signal, data = _night_data(config)
    outcome = run_cycles(
        train=data.train, selection=data.selection, config=config.training, seed=seed, output_dir=output_dir
    )
    scenarios = build_scenarios(data, signal, config, bar_minutes=prepared.bar_minutes)
    assessment = assess(
        outcome.best_checkpoint,
        ChampionInput(None),
        scenarios,
        config,
        bar_minutes=prepared.bar_minutes,
        plots_dir=output_dir / "plots",
    )
    trials = [list(cycle.selection_returns) for cycle in outcome.cycles if not cycle.rolled_back]
    decision = judge(assessment, config, trials=trials)
    mixed = assessment.candidate[REPLAY_SCENARIO]
    try:
        from training.outcome import night_health
    except ImportError:  # the previous tree has no health figures
        health = None
    else:
        figures = night_health(outcome.cycles, config.training)
        health = None if figures is None else figures.as_metrics(prefix="")
    return {
        "seed": seed,
        "best_cycle": outcome.best_cycle,
        "best_checkpoint": str(outcome.best_checkpoint),
        "cycles": len(outcome.cycles),
        "training_stop": outcome.reason,
        "gate_passed": decision.passed,
        "gate_reason": decision.reason,
        "test": {key: float(mixed[key]) for key in TEST_FIGURES},
        "controller_health": health,
        "wall_seconds": time.perf_counter() - started,
    }


def _previous_tree(commit: str, folder: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def _run_previous(seed: int, tree: Path, output_dir: Path) -> dict[str, Any]:
    """The night in the previous tree, in a subprocess (its modules must not mix with this tree's)."""
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", str(seed), "--output", str(output_dir)],
        env={**os.environ, "STAIRWAYS_TREE": str(tree), "PYTHONPATH": str(tree)},
        cwd=tree,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def _selection_behaviour(checkpoint: Path, seed: int, *, target: float | None = None) -> dict[str, float]:
    """This tree's greedy evaluation of ``checkpoint`` on the night's selection window (``target``: the base
    target trades per day the night was trained with, default the config's)."""
    from controllers.reward_config import regime_target
    from stairways.config import RetrainConfig
    from training.cycles import evaluate_checkpoint

    config = RetrainConfig.model_validate({"seed": seed, "training": {"progress_bar": False}})
    _, _, data = _night_data(config)
    evaluation = evaluate_checkpoint(checkpoint, data.selection, config=config.training, sessions=None)
    controller = config.training.controller
    if target is not None:
        controller = controller.model_copy(update={"target_trades_per_day": target})
    target = regime_target(controller, evaluation["regime_score_mean"])
    decisions = evaluation["steps"] / evaluation["sessions"]
    idle_target = 1.0 - target / decisions
    return {
        "trades_per_day": evaluation["trades_per_day"],
        "target_trades_per_day": target,
        "trades_error": evaluation["trades_per_day"] - target,
        "idle_rate": evaluation["idle_rate"],
        "idle_target": idle_target,
        "idle_error": evaluation["idle_rate"] - idle_target,
        "hold_action_rate": evaluation["hold_rate"],
        "score": evaluation["score"],
    }


def _goal(night_result: dict[str, Any]) -> bool:
    selection = night_result["selection"]
    return 5.0 <= selection["trades_per_day"] <= 25.0 and abs(selection["idle_error"]) <= 0.10


def _health(result: dict[str, Any]) -> str:
    health = result.get("controller_health")
    return "-" if not health else f"{health['score']:.2f}"


def _table(nights: list[dict[str, Any]]) -> str:
    header = (
        f"{'arm':9s} {'seed':>4s} {'sel tpd':>8s} {'target':>7s} {'err':>6s} {'idle':>6s} {'idle err':>8s} "
        f"{'hold/hold':>9s} {'test ret%':>9s} {'sharpe':>7s} {'dd%':>6s} {'health':>6s} {'gate':>5s} {'goal':>5s}"
    )
    lines = [header, "-" * len(header)]
    for result in nights:
        selection, test = result["selection"], result["test"]
        lines.append(
            f"{result['arm']:9s} {result['seed']:>4d} {selection['trades_per_day']:8.1f} "
            f"{selection['target_trades_per_day']:7.1f} {selection['trades_error']:+6.1f} {selection['idle_rate']:6.3f} "
            f"{selection['idle_error']:+8.3f} {selection['hold_action_rate']:9.3f} {test['total_return_pct']:9.3f} "
            f"{test['sharpe']:7.2f} {test['max_drawdown_pct']:6.2f} {_health(result):>6s} "
            f"{'PASS' if result['gate_passed'] else 'fail':>5s} "
            f"{'yes' if _goal(result) else 'no':>5s}"
        )
    return "\n".join(lines)


def summarize(nights: list[dict[str, Any]]) -> dict[str, Any]:
    """Per arm: seeds meeting the behaviour goal, mean |trades error|, mean test return, gate passes."""
    summary = {}
    for arm in ARMS:
        rows = [result for result in nights if result["arm"] == arm]
        if not rows:
            continue
        summary[arm] = {
            "nights": len(rows),
            "goal_met": sum(_goal(result) for result in rows),
            "in_gate_band": sum(5.0 <= result["selection"]["trades_per_day"] <= 25.0 for result in rows),
            "mean_abs_trades_error": statistics.fmean(abs(r["selection"]["trades_error"]) for r in rows),
            "mean_test_return_pct": statistics.fmean(r["test"]["total_return_pct"] for r in rows),
            "mean_test_sharpe": statistics.fmean(r["test"]["sharpe"] for r in rows),
            "gate_passed": sum(r["gate_passed"] for r in rows),
        }
    return summary


def _controller_defaults() -> Any:
    from controllers.reward_config import RewardControllerConfig

    return RewardControllerConfig()


def _responsiveness(sweep: list[dict[str, Any]], nights: list[dict[str, Any]]) -> dict[str, Any]:
    """Deployed trades per day by base target: the sweep's nights and the default greedy arm."""
    rows = [(row["target"], row["seed"], row["selection"]["trades_per_day"]) for row in sweep]
    default = type(_controller_defaults()).model_fields["target_trades_per_day"].default
    rows += [(default, n["seed"], n["selection"]["trades_per_day"]) for n in nights if n["arm"] == "greedy"]
    result = {}
    for target in sorted({target for target, _, _ in rows}):
        values = [(seed, trades) for row_target, seed, trades in rows if row_target == target]
        trades = [value for _, value in values]
        result[f"{target:g}"] = {
            "nights": len(trades),
            "mean_trades_per_day": statistics.fmean(trades),
            "per_seed": {seed: round(value, 1) for seed, value in values},
            "in_gate_band": sum(5.0 <= value <= 25.0 for value in trades),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3, 4, 5])
    parser.add_argument("--arms", nargs="*", choices=ARMS, default=list(ARMS))
    parser.add_argument("--previous-commit", default=PREVIOUS_COMMIT)
    parser.add_argument("--output", type=Path, default=ROOT / "bench-results" / "controller_nights.json")
    parser.add_argument(
        "--target-sweep",
        type=float,
        nargs="*",
        default=[10.0, 20.0],
        help="also train the greedy arm with these base targets (trades/day) to show the deployed rate follows",
    )
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(night(args.worker, controller_enabled=True, output_dir=args.output)))
        return 0
    nights = []
    with tempfile.TemporaryDirectory() as work:
        previous_tree = None
        if "previous" in args.arms:
            try:
                previous_tree = _previous_tree(args.previous_commit, Path(work) / "previous-tree")
            except subprocess.CalledProcessError as error:
                print(
                    f"previous design skipped: commit {args.previous_commit} unavailable ({error.stderr!r})"
                )
        for seed in args.seeds:
            for arm in args.arms:
                output_dir = Path(work) / f"{arm}-{seed}"
                if arm == "previous":
                    if previous_tree is None:
                        continue
                    result = _run_previous(seed, previous_tree, output_dir)
                else:
                    result = night(seed, controller_enabled=arm == "greedy", output_dir=output_dir)
                result["arm"] = arm
                result["selection"] = _selection_behaviour(Path(result["best_checkpoint"]), seed)
                nights.append(result)
                print(
                    f"{arm:9s} seed {seed}: selection {result['selection']['trades_per_day']:.1f} trades/day "
                    f"(target {result['selection']['target_trades_per_day']:.1f}), test return "
                    f"{result['test']['total_return_pct']:.3f}%, gate {'PASS' if result['gate_passed'] else 'fail'} "
                    f"({result['wall_seconds']:.0f} s)",
                    flush=True,
                )
        sweep = []
        for target in args.target_sweep:
            for seed in args.seeds:
                output_dir = Path(work) / f"target-{target:g}-{seed}"
                result = night(seed, controller_enabled=True, output_dir=output_dir, target=target)
                selection = _selection_behaviour(Path(result["best_checkpoint"]), seed, target=target)
                sweep.append({"target": target, "seed": seed, "selection": selection, "test": result["test"]})
                print(
                    f"target {target:g}  seed {seed}: selection {selection['trades_per_day']:.1f} trades/day "
                    f"(regime target {selection['target_trades_per_day']:.1f})",
                    flush=True,
                )
    print()
    print(_table(nights))
    summary = summarize(nights)
    print()
    for arm, figures in summary.items():
        print(
            f"{arm:9s}: goal met {figures['goal_met']}/{figures['nights']}, trades/day in [5, 25] "
            f"{figures['in_gate_band']}/{figures['nights']}, mean |trades error| {figures['mean_abs_trades_error']:.1f}, "
            f"mean test return {figures['mean_test_return_pct']:.3f}%, mean Sharpe {figures['mean_test_sharpe']:.2f}, "
            f"gate passed {figures['gate_passed']}/{figures['nights']}"
        )
    responsiveness = _responsiveness(sweep, nights)
    for target, figures in responsiveness.items():
        print(
            f"base target {target}: deployed trades/day mean {figures['mean_trades_per_day']:.1f} "
            f"(per seed {figures['per_seed']}), inside 5-25 {figures['in_gate_band']}/{figures['nights']}"
        )
    report = {
        "summary": summary,
        "target_sweep": responsiveness,
        "nights": nights,
        "sweep": sweep,
        "python": platform.python_version(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"written: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
