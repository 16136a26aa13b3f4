"""Judging a candidate: scenarios, batched evaluation of candidate, champion and baselines, and the gate.

Prefect-free; ``tasks/validation.py`` adapts it. Scenario keys are ``"<kind>/<scenario>"``
(``held_out/mixed``, ``stress/trending``; see ``validation.gate_criteria.scenario_key``). The ``held_out``
scenarios are slices of the **test window**, which nothing read before the candidate was fixed; the
selection window that picked the candidate is never used here.

The champion is one of three cases: none (no ``champion`` alias), comparable (re-evaluated on the same
episodes), or incomparable (it exists but cannot run on tonight's observations, or its checkpoint could not
be had): then the gate fails closed unless ``gate.replace_incomparable_champion`` is set.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from envs.evaluation import EpisodeRecord, Policy, evaluate_episodes
from envs.market_arrays import MarketArrays
from envs.policies import BuyAndHoldPolicy, FlatPolicy, SignalRulePolicy
from market.calendar import SESSION_MINUTES
from market.signal import SignalResult
from market.synthetic import SyntheticMarketConfig
from stairways.config import SIGNAL_FEATURE, RetrainConfig
from stairways.pipeline import TrainingData
from training.checkpoints import LoadedPolicy, checkpoint_mismatch, load_checkpoint
from training.ppo import torch_threads
from validation.costs import TransactionCosts, transaction_costs
from validation.gate import decide
from validation.gate_criteria import CANDIDATE, scenario_key
from validation.gate_decision import GateDecision
from validation.gate_evidence import GateEvidence
from validation.metrics import aggregate_metrics, plot_equity_curves
from validation.pbo import sharpe_ratio
from validation.scenarios import Scenario, held_out_scenarios, stress_scenarios

__all__ = [
    "BASELINES",
    "REPLAY_SCENARIO",
    "Assessment",
    "ChampionInput",
    "assess",
    "build_scenarios",
    "judge",
    "session_sharpe",
]

BASELINES = ("flat", "buy_and_hold", "signal_rule")
REPLAY_SCENARIO = "held_out/mixed"

Metrics = dict[str, dict[str, float]]


@dataclass(frozen=True)
class ChampionInput:
    """The registry's champion as the night found it: its checkpoint (None: none usable), version, why."""

    checkpoint: Path | None
    version: str | None = None
    reason: str = "no champion"


@dataclass(frozen=True)
class Assessment:
    """Per-scenario metrics of the candidate, the champion (None: none or incomparable) and the baselines."""

    candidate: Metrics
    champion: Metrics | None
    champion_note: str
    champion_problem: str | None
    """Set when a champion exists but could not be evaluated here: the gate then fails closed."""
    baselines: dict[str, Metrics]
    session_returns: dict[str, list[float]]
    """Per policy, the return (a fraction) of each :data:`REPLAY_SCENARIO` session, same order for all."""
    replay_pnl: list[float]
    """Candidate PnL (dollars) per episode of :data:`REPLAY_SCENARIO`: what the replay check must reproduce."""
    equity_plots: dict[str, Path]
    paired_sessions: tuple[str, ...] = ()
    """The sessions behind :attr:`session_returns`, in the same (time) order."""
    transaction_costs: TransactionCosts | None = None
    """The candidate's cost breakdown on the paired scenario (None: it had no episodes)."""
    sample_episode: EpisodeRecord | None = None
    """The candidate's paired-scenario session with the median return: positions and actions to look at."""


def build_scenarios(
    data: TrainingData, signal: SignalResult, config: RetrainConfig, *, bar_minutes: int
) -> dict[str, Scenario]:
    """Held-out regime slices of the test window and synthetic stress scenarios, by scenario key."""
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
    held_out = held_out_scenarios(data.test, bootstrap=data.train, config=scenario_config)
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


def _champion(champion: ChampionInput, market: MarketArrays) -> tuple[LoadedPolicy | None, str, str | None]:
    """The loaded champion, a note, and the problem when one exists but cannot be compared."""
    if champion.checkpoint is None:
        if champion.version is None:
            return None, "no champion", None
        problem = f"champion version {champion.version}: {champion.reason}"
        return None, f"champion not comparable: {problem}", problem
    problem = checkpoint_mismatch(champion.checkpoint, market.spec)
    if problem is not None:
        where = f"champion version {champion.version}" if champion.version else "champion"
        problem = f"{where} not comparable on tonight's observations: {problem}"
        return None, problem, problem
    note = "champion re-evaluated on the same scenarios"
    return load_checkpoint(champion.checkpoint, market=market), note, None


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
    champion: ChampionInput,
    scenarios: Mapping[str, Scenario],
    config: RetrainConfig,
    *,
    bar_minutes: int,
    plots_dir: Path,
) -> Assessment:
    """Evaluate candidate, champion and baselines on every scenario (same episodes, deterministic actions)."""
    reference = next(scenario.episodes[0] for scenario in scenarios.values() if not scenario.empty)
    candidate = load_checkpoint(candidate_checkpoint, market=reference)
    champion_policy, champion_note, champion_problem = _champion(champion, reference)
    policies: dict[str, tuple[Policy, LoadedPolicy | None]] = {CANDIDATE: (candidate, candidate)}
    if champion_policy is not None:
        policies["champion"] = (champion_policy, champion_policy)
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
    paired = config.gate.paired_scenario
    traded = records[CANDIDATE].get(paired, [])
    costs = sample = None
    if traded:
        costs = transaction_costs(traded, [market.volume for market in scenarios[paired].episodes])
        sample = sorted(traded, key=lambda record: record.total_return)[(len(traded) - 1) // 2]
    return Assessment(
        candidate=metrics[CANDIDATE],
        champion=metrics.get("champion"),
        champion_note=champion_note,
        champion_problem=champion_problem,
        baselines={name: metrics[name] for name in BASELINES if name in metrics},
        session_returns={
            name: [record.total_return for record in by_key.get(paired, [])]
            for name, by_key in records.items()
        },
        replay_pnl=[float(record.equity[-1]) - initial for record in records[CANDIDATE][REPLAY_SCENARIO]],
        equity_plots=equity_plots,
        paired_sessions=tuple(record.session for record in traded),
        transaction_costs=costs,
        sample_episode=sample,
    )


def session_sharpe(returns: Sequence[float]) -> float:
    """Per-session Sharpe ratio (:func:`validation.pbo.sharpe_ratio`); NaN with fewer than two sessions."""
    values = np.asarray(returns, dtype=np.float64)
    if values.size < 2:
        return math.nan
    return float(sharpe_ratio(values[:, None])[0])


def judge(
    assessment: Assessment,
    config: RetrainConfig,
    *,
    trials: Sequence[Sequence[float]] = (),
    policy: str = CANDIDATE,
    controller_health: Mapping[str, float] | None = None,
    prior_trials: int = 0,
    prior_sharpes: Sequence[float] = (),
) -> GateDecision:
    """The gate's decision on ``policy`` (the candidate, or a baseline judged by the same rules).

    ``trials`` are the selection-window session returns of every candidate compared to pick this one (the
    kept cycles): their count and the spread of their Sharpe ratios deflate the candidate's Sharpe ratio.
    A baseline is judged as one trial, with no champion. ``controller_health``: the night's reward
    controller health figures (:func:`training.cycles.night_health`), reported and, with
    ``gate.min_controller_health``, judged. ``prior_trials`` and ``prior_sharpes``: the tuning study's trials
    that chose tonight's config (their count and per-session Sharpe ratios), counted among the candidates.
    """
    tonight = (session_sharpe(trial) for trial in trials)
    sharpes = tuple(value for value in (*tonight, *prior_sharpes) if math.isfinite(value))
    if policy == CANDIDATE:
        evidence = GateEvidence(
            session_returns=assessment.session_returns,
            candidates_compared=max(1, len(trials) + prior_trials),
            trial_sharpes=sharpes,
            controller_health=controller_health,
        )
        return decide(
            assessment.candidate,
            assessment.champion,
            config.gate,
            evidence,
            champion_problem=assessment.champion_problem,
        )
    others = {name: values for name, values in assessment.session_returns.items() if name != "champion"}
    evidence = GateEvidence(session_returns=others)
    return decide(assessment.baselines[policy], None, config.gate, evidence, candidate_name=policy)
