"""Evaluation speed and equality: batched lockstep evaluation vs SB3's ``evaluate_policy``, same episodes.

Run from the repository root: ``python benchmarks/bench_evaluation.py [--episodes N] [--runs R]``. Writes
``bench-results/evaluation.json`` and prints the figures.

Setup (all seeded): a synthetic market of 12 sessions (one-minute bars, default features, the out-of-fold
signal, regime scores) whose first 9 sessions train a tiny PPO checkpoint (:func:`training.cycles.run_cycles`,
one cycle of 2,048 steps); the ``mixed`` stress scenario (:func:`validation.scenarios.stress_scenarios`,
``--episodes`` sessions of the synthetic generator, signal from the forward model) supplies the episodes.

* ``batched``: :func:`envs.evaluation.evaluate_episodes` with the loaded checkpoint
  (:class:`training.cycles.LoadedPolicy`): every episode its own env and controller, one batched forward
  pass per step.
* ``sb3``: ``stable_baselines3.common.evaluation.evaluate_policy`` (deterministic, episode rewards
  returned) with the checkpoint's PPO model on ONE env: a ``DummyVecEnv`` over
  :class:`envs.evaluation.EpisodeSequenceEnv` (the same episodes in order, a fresh env and restored
  controller per episode), wrapped in ``VecNormalize(training=False, norm_reward=False)`` holding the
  checkpoint's normalization statistics, so the model sees the same normalized observations.

Equality: episode lengths must be identical, and the episode rewards identical once both are summed the same
way (SB3's ``DummyVecEnv`` stores each step's reward as float32 and ``evaluate_policy`` adds them in
float64, step by step; the batched record keeps the float64 rewards, so the float32-rounded sum is also
reported against the float64 sum). Speed: wall time of each evaluator (median of ``--runs`` for the
batched one after a warm-up run, one run for SB3), torch with one thread.
"""

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import torch  # noqa: E402
from stable_baselines3.common.evaluation import evaluate_policy  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize  # noqa: E402

from controllers.regime import RegimeDetectorConfig, regime_scores  # noqa: E402
from envs.evaluation import EpisodeRecord, EpisodeSequenceEnv, evaluate_episodes
from envs.market_arrays import MarketArrays, market_arrays  # noqa: E402
from market.feature_config import FeatureConfig, feature_names  # noqa: E402
from market.features import build_features  # noqa: E402
from market.labeling import label_bars  # noqa: E402
from market.signal import SignalModel, causal_signal  # noqa: E402
from market.synthetic import SyntheticMarketConfig, generate_market  # noqa: E402
from stairways.config import DEFAULT_OBSERVATION_FEATURES, SIGNAL_FEATURE  # noqa: E402
from training.checkpoints import NORMALIZATION_FILE, LoadedPolicy, load_checkpoint
from training.cycles import run_cycles
from training.normalization import restore_normalization
from training.ppo import PPOSettings, TrainingConfig
from validation.scenarios import ScenarioConfig, session_markets, stress_scenarios  # noqa: E402

__all__ = ["main", "sb3_episode_rewards", "tiny_checkpoint"]

SESSIONS = 12
TRAIN_SESSIONS = 9
MARKET_SEED = 21
TRAINING_SEED = 5
SIGNAL_SEED = 3
PRIMARY_HORIZON = 20
TRAINING = TrainingConfig(
    cycles=1,
    steps_per_cycle=2048,
    progress_bar=False,
    ppo=PPOSettings(n_envs=4, n_steps=256, batch_size=256),
)


def _concatenate(parts: list[MarketArrays]) -> MarketArrays:
    first = parts[0]
    return MarketArrays(
        features=np.ascontiguousarray(np.concatenate([part.features for part in parts])),
        feature_names=first.feature_names,
        open=np.ascontiguousarray(np.concatenate([part.open for part in parts])),
        close=np.ascontiguousarray(np.concatenate([part.close for part in parts])),
        volume=np.ascontiguousarray(np.concatenate([part.volume for part in parts])),
        session_index=np.ascontiguousarray(np.concatenate([part.session_index for part in parts])),
        timestamps=np.ascontiguousarray(np.concatenate([part.timestamps for part in parts])),
        regime_score=np.ascontiguousarray(np.concatenate([part.regime_score for part in parts])),
        symbols=first.symbols,
    )


def tiny_checkpoint(directory: Path) -> tuple[LoadedPolicy, SignalModel]:
    """Train the small seeded checkpoint described in the module docstring; return it and the signal model."""
    bars = generate_market(SyntheticMarketConfig(sessions=SESSIONS), seed=MARKET_SEED).bars
    features = build_features(bars)
    day = pl.col("ts").dt.convert_time_zone("America/New_York").dt.date()
    days = bars.select(day).to_series().unique().sort()
    selection_start = bars.filter(day > days[TRAIN_SESSIONS - 1]).get_column("ts").min()
    signal = causal_signal(
        features,
        label_bars(bars),
        feature_columns=feature_names(),
        primary_horizon=PRIMARY_HORIZON,
        window_starts={"selection": selection_start},
        seed=SIGNAL_SEED,
    )
    frame = features.join(
        signal.signal.select("ts", "symbol", pl.col("signal").alias(SIGNAL_FEATURE)), on=["ts", "symbol"]
    )
    arrays = market_arrays(
        bars, frame, feature_columns=DEFAULT_OBSERVATION_FEATURES, symbols=("NVDA", "MSFT")
    )
    arrays = arrays.with_regime_score(regime_scores(arrays.close, session_index=arrays.session_index))
    parts = [part for _, part in session_markets(arrays)]
    train, validation = _concatenate(parts[:TRAIN_SESSIONS]), _concatenate(parts[TRAIN_SESSIONS:])
    outcome = run_cycles(
        train=train, selection=validation, config=TRAINING, seed=TRAINING_SEED, output_dir=directory
    )
    return load_checkpoint(outcome.best_checkpoint, market=validation), signal.forward_model


def sb3_episode_rewards(
    policy: LoadedPolicy, episodes: list[MarketArrays]
) -> tuple[list[float], list[int]]:
    """SB3 ``evaluate_policy`` on one env walking ``episodes`` in order (see the module docstring)."""
    walker = EpisodeSequenceEnv(episodes, env_config=policy.config.env, controller_factory=policy.controller)
    environment = VecNormalize(
        DummyVecEnv([lambda: walker]), training=False, norm_obs=True, norm_reward=False
    )
    restore_normalization(environment, policy.directory / NORMALIZATION_FILE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rewards, lengths = evaluate_policy(
            policy.model,
            environment,
            n_eval_episodes=len(episodes),
            deterministic=True,
            return_episode_rewards=True,
            warn=False,
        )
    return [float(value) for value in rewards], [int(value) for value in lengths]  # type: ignore[union-attr]


def float32_step_sum(record: EpisodeRecord) -> float:
    """The episode reward summed as SB3 does: each step's reward rounded to float32, added in float64."""
    return float(np.cumsum(record.rewards.astype(np.float32).astype(np.float64))[-1])


def main() -> dict[str, Any]:
    """Run the benchmark, print the figures and write ``bench-results/evaluation.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    arguments = parser.parse_args()
    torch.set_num_threads(1)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        policy, signal_model = tiny_checkpoint(Path(scratch))
        setup_seconds = time.perf_counter() - started
        started = time.perf_counter()
        scenario = stress_scenarios(
            synthetic=SyntheticMarketConfig(),
            features=FeatureConfig(),
            observation_features=DEFAULT_OBSERVATION_FEATURES,
            signal_model=signal_model,
            regime=RegimeDetectorConfig(),
            config=ScenarioConfig(stress_episodes=arguments.episodes),
            symbols=("NVDA", "MSFT"),
        )["mixed"]
        scenario_seconds = time.perf_counter() - started
        episodes = list(scenario.episodes)

        evaluate_episodes(policy, episodes[:5], env_config=policy.config.env)  # warm-up
        batched_times = []
        for _ in range(arguments.runs):
            started = time.perf_counter()
            records = evaluate_episodes(policy, episodes, env_config=policy.config.env)
            batched_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        sb3_rewards, sb3_lengths = sb3_episode_rewards(policy, episodes)
        sb3_seconds = time.perf_counter() - started

    batched_seconds = statistics.median(batched_times)
    lengths = [record.length for record in records]
    summed_like_sb3 = np.array([float32_step_sum(record) for record in records])
    float64_sums = np.array([record.reward for record in records])
    sb3 = np.array(sb3_rewards)
    steps = int(sum(lengths))
    result: dict[str, Any] = {
        "benchmark": "batched lockstep evaluation vs SB3 evaluate_policy (one env), same episodes",
        "episodes": len(episodes),
        "steps": steps,
        "scenario": scenario.description,
        "observation_size": int(episodes[0].features.shape[1]) + 2,
        "checkpoint_timesteps": int(policy.meta["num_timesteps"]),
        "setup_seconds": setup_seconds,
        "scenario_seconds": scenario_seconds,
        "batched_seconds": batched_seconds,
        "batched_runs_seconds": batched_times,
        "sb3_seconds": sb3_seconds,
        "speedup": sb3_seconds / batched_seconds,
        "batched_steps_per_second": steps / batched_seconds,
        "sb3_steps_per_second": steps / sb3_seconds,
        "lengths_identical": lengths == sb3_lengths,
        "rewards_identical_float32_steps": bool(np.array_equal(summed_like_sb3, sb3)),
        "max_abs_reward_diff_float32_steps": float(np.max(np.abs(summed_like_sb3 - sb3))),
        "max_abs_reward_diff_float64_sum": float(np.max(np.abs(float64_sums - sb3))),
        "early_terminations": int(sum(record.terminated_early for record in records)),
        "mean_agent_orders": float(np.mean([record.agent_orders for record in records])),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {name: metadata.version(name) for name in ("stable-baselines3", "torch", "numpy")},
    }
    print(
        f"{len(episodes)} episodes, {steps} steps: batched {batched_seconds:.3f} s, SB3 {sb3_seconds:.3f} s, "
        f"speedup {result['speedup']:.1f}x"
    )
    print(
        f"lengths identical: {result['lengths_identical']}; rewards identical (float32 steps as SB3): "
        f"{result['rewards_identical_float32_steps']} (max abs diff "
        f"{result['max_abs_reward_diff_float32_steps']:.3g}); max abs diff vs float64 sums "
        f"{result['max_abs_reward_diff_float64_sum']:.3g}"
    )
    output = ROOT / "bench-results" / "evaluation.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
