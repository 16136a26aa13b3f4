"""Judging a candidate: scenarios, batched evaluation of candidate, champion and baselines, and the gate.

Prefect-free; ``tasks/validation.py`` adapts it. Scenario keys are ``"<kind>/<scenario>"``
(``held_out/mixed``, ``stress/trending``; see ``validation.gate.scenario_key``).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from envs.market_arrays import MarketArrays
from market.calendar import SESSION_MINUTES
from market.signal import SignalResult
from market.synthetic import SyntheticMarketConfig
from stairways.config import SIGNAL_FEATURE, RetrainConfig
from stairways.pipeline import TrainingData
from training.cycles import LoadedPolicy, check_warm_start, load_checkpoint
from training.ppo import torch_threads
from validation.evaluation import EpisodeRecord, Policy, evaluate_episodes
from validation.gate import GateDecision, decide, scenario_key
from validation.metrics import (
    BuyAndHoldPolicy,
    FlatPolicy,
    SignalRulePolicy,
    aggregate_metrics,
    plot_equity_curves,
)
from validation.scenarios import Scenario, held_out_scenarios, stress_scenarios

__all__ = [
    "BASELINES",
    "REPLAY_SCENARIO",
    "Assessment",
    "assess",
    "build_scenarios",
    "judge",
]

BASELINES = ("flat", "buy_and_hold", "signal_rule")
REPLAY_SCENARIO = "held_out/mixed"

Metrics = dict[str, dict[str, float]]


@dataclass(frozen=True)
class Assessment:
    """Per-scenario metrics of the candidate, the champion (None: no usable champion) and the baselines."""

    candidate: Metrics
    champion: Metrics | None
    champion_note: str
    baselines: dict[str, Metrics]
    replay_pnl: list[float]
    """Candidate PnL (dollars) per episode of :data:`REPLAY_SCENARIO`: what the replay check must reproduce."""
    equity_plots: dict[str, Path]


def build_scenarios(
    data: TrainingData, signal: SignalResult, config: RetrainConfig, *, bar_minutes: int
) -> dict[str, Scenario]:
    """Held-out regime slices of the validation window and synthetic stress scenarios, by scenario key."""
    scenario_config = config.scenarios.model_copy(
        update={
            "bar_minutes": bar_minutes,
            "synthetic_mode": config.data.synthetic.mode if config.data.source == "synthetic" else "regimes",
        }
    )
    synthetic = (
        config.data.synthetic
        if config.data.source == "synthetic"
        else SyntheticMarketConfig(symbols=config.symbols)
    )
    held_out = held_out_scenarios(data.validation, bootstrap=data.train, config=scenario_config)
    stress = stress_scenarios(
        synthetic=synthetic,
        features=config.features,
        observation_features=config.observation_features,
        signal_model=signal.forward_model,
        regime=config.regime,
        config=scenario_config,
        symbols=config.symbols,
    )
    scenarios = {scenario_key("held_out", name): scenario for name, scenario in held_out.items()}
    scenarios |= {scenario_key("stress", name): scenario for name, scenario in stress.items()}
    return scenarios


def _champion(champion_checkpoint: Path | None, market: MarketArrays) -> tuple[LoadedPolicy | None, str]:
    if champion_checkpoint is None:
        return None, "no champion"
    problem = check_warm_start(
        champion_checkpoint,
        observation_size=market.features.shape[1] + 2,
        action_count=9,
        feature_names=market.feature_names,
    )
    if problem is not None:
        return None, f"champion not comparable on tonight's observations: {problem}"
    return load_checkpoint(champion_checkpoint, market=market), "champion re-evaluated on the same scenarios"


def _evaluate(
    policy: Policy, scenarios: Mapping[str, Scenario], config: RetrainConfig, loaded: LoadedPolicy | None
) -> dict[str, list[EpisodeRecord]]:
    records: dict[str, list[EpisodeRecord]] = {}
    for key, scenario in scenarios.items():
        if scenario.empty:
            records[key] = []
            continue
        records[key] = evaluate_episodes(
            policy,
            scenario.episodes,
            env_config=config.training.env,
            controller_state=None if loaded is None else loaded.controller_state,
            controller_config=None if loaded is None else loaded.config.controller,
            sessions=scenario.sessions,
        )
    return records


def assess(
    candidate_checkpoint: Path,
    champion_checkpoint: Path | None,
    scenarios: Mapping[str, Scenario],
    config: RetrainConfig,
    *,
    bar_minutes: int,
    plots_dir: Path,
) -> Assessment:
    """Evaluate candidate, champion and baselines on every scenario (same episodes, deterministic actions)."""
    reference = next(scenario.episodes[0] for scenario in scenarios.values() if not scenario.empty)
    candidate = load_checkpoint(candidate_checkpoint, market=reference)
    champion, champion_note = _champion(champion_checkpoint, reference)
    policies: dict[str, tuple[Policy, LoadedPolicy | None]] = {"candidate": (candidate, candidate)}
    if champion is not None:
        policies["champion"] = (champion, champion)
    policies["flat"] = (FlatPolicy(), None)
    policies["buy_and_hold"] = (BuyAndHoldPolicy(), None)
    if SIGNAL_FEATURE in config.observation_features:
        policies["signal_rule"] = (SignalRulePolicy.from_feature_names(reference.feature_names), None)
    bars_per_session = SESSION_MINUTES / bar_minutes
    with torch_threads(config.training.ppo.torch_threads):
        records = {
            name: _evaluate(policy, scenarios, config, loaded) for name, (policy, loaded) in policies.items()
        }
    metrics = {
        name: {
            key: aggregate_metrics(runs, bars_per_session=bars_per_session) for key, runs in by_key.items()
        }
        for name, by_key in records.items()
    }
    plots_dir.mkdir(parents=True, exist_ok=True)
    equity_plots = {
        key: plot_equity_curves(
            {name: records[name][key] for name in records},
            plots_dir / f"equity_{key.replace('/', '_')}.png",
            title=f"{key}: mean equity per episode",
        )
        for key, scenario in scenarios.items()
        if not scenario.empty
    }
    initial = config.training.env.initial_capital
    return Assessment(
        candidate=metrics["candidate"],
        champion=metrics.get("champion"),
        champion_note=champion_note,
        baselines={name: metrics[name] for name in BASELINES if name in metrics},
        replay_pnl=[float(record.equity[-1]) - initial for record in records["candidate"][REPLAY_SCENARIO]],
        equity_plots=equity_plots,
    )


def judge(assessment: Assessment, config: RetrainConfig) -> GateDecision:
    """The gate's decision on the candidate against the criteria and the champion."""
    return decide(assessment.candidate, assessment.champion, config.gate)
