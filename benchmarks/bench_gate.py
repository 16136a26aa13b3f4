"""Does the gate mean something? Gate outcomes of whole nights over seeds: planted edge vs null market.

Run from the repository root: ``python benchmarks/bench_gate.py [--planted-seeds S ...] [--null-seeds S ...]
[--kickstart on|off|both]`` (writes ``bench-results/gate.json`` and prints one line per night). Exits 1 when
any null-market night would promote its agent: a false promotion is a defect, not a figure.

Each night is the nightly flow's plain functions without Prefect or MLflow (:mod:`stairways.pipeline`,
:func:`training.cycles.run_cycles` on the training and selection windows, then
:func:`stairways.assessment.assess` and ``judge`` on the test window) with the default training budget,
windows, scenario and gate settings except the market:

* ``planted``: 60 sessions with a 10-bar block momentum of strength 0.9 on both tickers (the planted
  market of ``tests/flows/test_promotion.py``), 40 stress episodes per scenario. The agent should pass; the
  signal rule's verdict under the same gate is reported next to it. Run with the kickstart on and off
  (``training.imitation.enabled``), so the table shows what the kickstart contributes.
* ``null``: the martingale market with the same sizes. Nothing is predictable: any pass is a defect.

Reported per night: the agent's and the signal rule's verdicts, the failed criteria, the agent's
test-window figures, the paired interval against flat, the deflated Sharpe ratio and the candidates
compared; and the false-promotion rate and the planted promotion rates. About a minute a night on 2 cores.
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
from stairways.assessment import REPLAY_SCENARIO, ChampionInput, assess, build_scenarios, judge  # noqa: E402
from stairways.config import RetrainConfig  # noqa: E402
from training.cycles import run_cycles  # noqa: E402

__all__ = ["main", "night", "night_config", "summarize"]

FIGURES = ("total_return_pct", "max_drawdown_pct", "trades_per_day", "sharpe", "win_rate", "episodes")


def night_config(mode: str, seed: int, *, kickstart: bool = True) -> RetrainConfig:
    """A default night on the planted-edge market (or the same night on the martingale market)."""
    synthetic: dict[str, Any] = {"sessions": 60, "mode": mode}
    if mode == "planted":
        synthetic |= {"planted_strength": 0.9, "planted_symbols": "both"}
    return RetrainConfig.model_validate(
        {
            "seed": seed,
            "data": {"synthetic": synthetic},
            "scenarios": {"stress_episodes": 40},
            "training": {"progress_bar": False, "imitation": {"enabled": kickstart}},
        }
    )


def night(mode: str, seed: int, *, kickstart: bool = True) -> dict[str, Any]:
    """One night's gate outcome for the agent and for the signal rule."""
    config = night_config(mode, seed, kickstart=kickstart)
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
            selection=data.selection,
            config=config.training,
            seed=config.seed,
            output_dir=Path(work),
        )
        scenarios = build_scenarios(data, signal, config, bar_minutes=prepared.bar_minutes)
        assessment = assess(
            outcome.best_checkpoint,
            ChampionInput(None),
            scenarios,
            config,
            bar_minutes=prepared.bar_minutes,
            plots_dir=Path(work) / "plots",
        )
    trials = [list(cycle.selection_returns) for cycle in outcome.cycles if not cycle.rolled_back]
    agent = judge(assessment, config, trials=trials)
    rule = judge(assessment, config, policy="signal_rule")
    mixed = assessment.candidate[REPLAY_SCENARIO]
    return {
        "mode": mode,
        "seed": seed,
        "kickstart": kickstart,
        "agent_passed": agent.passed,
        "agent_reason": agent.reason,
        "signal_rule_passed": rule.passed,
        "signal_rule_reason": rule.reason,
        "cycles": len(outcome.cycles),
        "best_cycle": outcome.best_cycle,
        "training_stop": outcome.reason,
        "start": outcome.cycles[0].warm_start_reason,
        "agent_test_mixed": {key: mixed[key] for key in FIGURES},
        "paired": agent.statistics.get("paired", {}),
        "deflated_sharpe": agent.statistics.get("deflated_sharpe", {}),
        "windows": plan.as_dict(),
        "signal_cv": signal.cv_scores.get("mean", {}),
        "wall_seconds": time.perf_counter() - started,
    }


def _rate(nights: list[dict[str, Any]], key: str) -> dict[str, Any]:
    passed = sum(result[key] for result in nights)
    return {"passed": passed, "nights": len(nights), "rate": passed / len(nights) if nights else None}


def summarize(nights: list[dict[str, Any]]) -> dict[str, Any]:
    """Promotion rates by market and kickstart setting; ``false_promotions`` counts null-market passes."""
    planted_on = [n for n in nights if n["mode"] == "planted" and n["kickstart"]]
    planted_off = [n for n in nights if n["mode"] == "planted" and not n["kickstart"]]
    null = [n for n in nights if n["mode"] == "martingale"]
    return {
        "planted_kickstart_on": _rate(planted_on, "agent_passed"),
        "planted_kickstart_off": _rate(planted_off, "agent_passed"),
        "planted_signal_rule": _rate(planted_on or planted_off, "signal_rule_passed"),
        "null_agent": _rate(null, "agent_passed"),
        "null_signal_rule": _rate(null, "signal_rule_passed"),
        "false_promotions": sum(n["agent_passed"] for n in null),
    }


def _line(result: dict[str, Any]) -> str:
    figures = result["agent_test_mixed"]
    flat = result["paired"].get("flat", {})
    deflated = result["deflated_sharpe"].get("probability")
    return (
        f"{result['mode']:10s} seed {result['seed']} kickstart {'on ' if result['kickstart'] else 'off'}: "
        f"agent {'PASS' if result['agent_passed'] else 'fail'}, signal rule "
        f"{'PASS' if result['signal_rule_passed'] else 'fail'}; test window: return "
        f"{figures['total_return_pct']:.2f}%, drawdown {figures['max_drawdown_pct']:.2f}%, "
        f"{figures['trades_per_day']:.1f} trades/day, win rate {figures['win_rate']:.2f}, "
        f"vs flat {flat.get('estimate', float('nan')):+.3f}% [{flat.get('lower', float('nan')):+.3f}, "
        f"{flat.get('upper', float('nan')):+.3f}] per session, deflated Sharpe "
        f"{float('nan') if deflated is None else deflated:.3f} of {result['cycles']} cycles "
        f"({result['wall_seconds']:.0f} s)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planted-seeds", type=int, nargs="*", default=[1, 2, 3, 4])
    parser.add_argument("--null-seeds", type=int, nargs="*", default=[1, 2, 3, 4, 5])
    parser.add_argument("--kickstart", choices=("on", "off", "both"), default="both")
    parser.add_argument("--output", type=Path, default=ROOT / "bench-results" / "gate.json")
    args = parser.parse_args(argv)
    settings = {"on": [True], "off": [False], "both": [True, False]}[args.kickstart]
    runs = [("planted", seed, kickstart) for kickstart in settings for seed in args.planted_seeds]
    runs += [("martingale", seed, True) for seed in args.null_seeds]
    nights = []
    for mode, seed, kickstart in runs:
        result = night(mode, seed, kickstart=kickstart)
        nights.append(result)
        print(_line(result), flush=True)
        if not result["agent_passed"]:
            print(f"    agent: {result['agent_reason']}")
    summary = summarize(nights)
    report = {**summary, "nights": nights, "python": platform.python_version()}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    for key in ("planted_kickstart_on", "planted_kickstart_off", "planted_signal_rule", "null_signal_rule"):
        rate = summary[key]
        if rate["nights"]:
            print(f"{key}: {rate['passed']}/{rate['nights']} passed the gate")
    null = summary["null_agent"]
    print(f"false promotions on the null market: {summary['false_promotions']}/{null['nights']} (must be 0)")
    print(f"written: {args.output}")
    return 1 if summary["false_promotions"] else 0


if __name__ == "__main__":
    sys.exit(main())
