"""Does the gate mean something? Gate outcomes of whole nights over seeds: planted edge vs null market.

Run from the repository root: ``python benchmarks/bench_gate.py [--planted-seeds S ...] [--null-seeds S ...]``
(writes ``bench-results/gate.json`` and prints one line per night).

Each night is the nightly flow's plain functions without Prefect or MLflow (:mod:`stairways.pipeline`,
:func:`training.cycles.run_cycles`, :func:`stairways.assessment.assess` and ``judge``) with the default
training, scenario and gate settings except the market:

* ``planted``: the planted market of ``tests/flows/test_promotion.py`` (40 sessions, 10-bar block momentum of
  strength 0.9 on both tickers, 8 validation sessions, 40 stress episodes per scenario). The agent should
  pass; the signal rule's own gate verdict is reported next to it (the test's premise is that it passes).
* ``null``: the martingale market with the same sizes. Nothing is predictable: any pass is a defect.

Reported per night: the agent's and the signal rule's verdicts, the failed criteria, and the agent's
held-out/mixed figures. Each night takes about half a minute on 2 cores.
"""

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from stairways import pipeline  # noqa: E402
from stairways.assessment import REPLAY_SCENARIO, assess, build_scenarios, judge  # noqa: E402
from stairways.config import RetrainConfig  # noqa: E402
from training.cycles import run_cycles  # noqa: E402
from validation.gate import decide  # noqa: E402

__all__ = ["main", "night"]

FIGURES = ("total_return_pct", "max_drawdown_pct", "trades_per_day", "sharpe", "win_rate")


def night_config(mode: str, seed: int) -> RetrainConfig:
    """The planted-edge test's night (or the same night on the martingale market)."""
    synthetic: dict[str, Any] = {"sessions": 40, "mode": mode}
    if mode == "planted":
        synthetic |= {"planted_strength": 0.9, "planted_symbols": "both"}
    return RetrainConfig.model_validate(
        {
            "seed": seed,
            "data": {"synthetic": synthetic},
            "window": {"validation_sessions": 8, "min_train_sessions": 5},
            "scenarios": {"stress_episodes": 40},
            "training": {"progress_bar": False},
        }
    )


def night(mode: str, seed: int) -> dict[str, Any]:
    """One night's gate outcome for the agent and for the signal rule."""
    config = night_config(mode, seed)
    started = time.perf_counter()
    market = pipeline.load_market(config)
    prepared = pipeline.prepare_bars(market.bars, config)
    features = pipeline.features_for(prepared, config)
    labels = pipeline.labels_for(prepared, config)
    plan = pipeline.split_windows(features, config)
    signal = pipeline.signal_for(features, labels, plan, config)
    data = pipeline.training_data(prepared, features, signal, plan, config)
    with tempfile.TemporaryDirectory() as work:
        outcome = run_cycles(
            train=data.train,
            validation=data.validation,
            config=config.training,
            seed=config.seed,
            output_dir=Path(work),
        )
        scenarios = build_scenarios(data, signal, config, bar_minutes=prepared.bar_minutes)
        assessment = assess(
            outcome.best_checkpoint,
            None,
            scenarios,
            config,
            bar_minutes=prepared.bar_minutes,
            plots_dir=Path(work) / "plots",
        )
    agent = judge(assessment, config)
    rule = decide(assessment.baselines["signal_rule"], None, config.gate)
    mixed = assessment.candidate[REPLAY_SCENARIO]
    return {
        "mode": mode,
        "seed": seed,
        "agent_passed": agent.passed,
        "agent_reason": agent.reason,
        "signal_rule_passed": rule.passed,
        "signal_rule_reason": rule.reason,
        "cycles": len(outcome.cycles),
        "training_stop": outcome.reason,
        "kickstart": outcome.cycles[0].warm_start_reason,
        "agent_held_out_mixed": {key: mixed[key] for key in FIGURES},
        "wall_seconds": time.perf_counter() - started,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planted-seeds", type=int, nargs="*", default=[1, 2, 3, 4, 5, 6])
    parser.add_argument("--null-seeds", type=int, nargs="*", default=[1, 2, 3])
    parser.add_argument("--output", type=Path, default=ROOT / "bench-results" / "gate.json")
    args = parser.parse_args(argv)
    nights = []
    for mode, seeds in (("planted", args.planted_seeds), ("martingale", args.null_seeds)):
        for seed in seeds:
            result = night(mode, seed)
            nights.append(result)
            figures = result["agent_held_out_mixed"]
            print(
                f"{mode:10s} seed {seed}: agent {'PASS' if result['agent_passed'] else 'fail'}, "
                f"signal rule {'PASS' if result['signal_rule_passed'] else 'fail'}; held-out mixed: "
                f"return {figures['total_return_pct']:.2f}%, drawdown {figures['max_drawdown_pct']:.2f}%, "
                f"{figures['trades_per_day']:.1f} trades/day, win rate {figures['win_rate']:.2f} "
                f"({result['wall_seconds']:.0f} s)"
            )
            if not result["agent_passed"]:
                print(f"    agent: {result['agent_reason']}")
    planted = [result for result in nights if result["mode"] == "planted"]
    null = [result for result in nights if result["mode"] == "martingale"]
    report = {
        "planted_agent_passed": sum(result["agent_passed"] for result in planted),
        "planted_signal_rule_passed": sum(result["signal_rule_passed"] for result in planted),
        "planted_nights": len(planted),
        "null_agent_passed": sum(result["agent_passed"] for result in null),
        "null_nights": len(null),
        "nights": nights,
        "python": platform.python_version(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"planted: agent passed {report['planted_agent_passed']}/{len(planted)}, signal rule "
        f"{report['planted_signal_rule_passed']}/{len(planted)}; null: agent passed "
        f"{report['null_agent_passed']}/{len(null)} (goal 0)"
    )
    print(f"written: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
