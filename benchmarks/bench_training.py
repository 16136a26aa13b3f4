"""Training throughput: one pipeline training cycle vs plain SB3 PPO on a trivial env with the same settings.

Run from the repository root: ``python benchmarks/bench_training.py [--runs R] [--full]``. Writes
``bench-results/training.json`` and prints the figures.

* ``pipeline``: :func:`training.cycles.run_cycle` (cycle 1, fresh start) with the default
  :class:`~training.ppo.TrainingConfig` (12,000 steps, 8 envs in one ``DummyVecEnv``, n_steps 256, batch 256,
  4 epochs, MLP 64x64, 1 torch thread), progress bar off, on a synthetic market of 30 sessions (one-minute
  bars, default features, regime scores): the first 25 sessions train, the last 5 validate. Steps per second
  is the cycle's own figure: env steps over the wall time of ``learn()`` (the real env, the shared
  controller's per-rollout greedy probe, ``VecMonitor``, ``VecNormalize`` and the metrics callback included,
  the probe's share reported beside it; the checkpoint writes and
  the evaluation are not, they are reported separately as the cycle's total wall time).
* ``reference``: SB3 PPO with the same PPO settings on 8 copies of a constant env (same observation size,
  ``Discrete(9)``, zero reward, truncated every 389 steps like a session), no wrappers.

After an untimed warm-up of each, the two are timed alternately, ``--runs`` times each (default 5); the
medians, their ratio and the median of the per-pair ratios are reported
(goal: the pipeline at >= 90% of the reference). ``--full`` also times a whole default run
(:func:`training.cycles.run_cycles`, up to 4 x 12,000 steps with early stop and rollback) on the same market,
and all four cycles run one after the other with :func:`training.cycles.run_cycle` whatever their outcome
(checkpoints and evaluations included).
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import gymnasium  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from gymnasium import spaces  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402

from controllers.regime import regime_scores  # noqa: E402
from envs.market_arrays import MarketArrays, market_arrays  # noqa: E402
from market.feature_config import feature_names  # noqa: E402
from market.features import build_features  # noqa: E402
from market.synthetic import SyntheticMarketConfig, generate_market  # noqa: E402
from training.cycles import run_cycle, run_cycles  # noqa: E402
from training.ppo import PPOSettings, TrainingConfig, new_model  # noqa: E402

__all__ = ["ConstantEnv", "bench_pipeline", "bench_reference", "main", "synthetic_windows"]

SESSIONS = 30
VALIDATION_SESSIONS = 5
MARKET_SEED = 11
TRAINING_SEED = 5
EPISODE_STEPS = 389


class ConstantEnv(gymnasium.Env[np.ndarray, np.int64]):
    """A trivial env: constant observation, zero reward, truncated every ``episode_steps`` steps."""

    def __init__(self, observation_size: int, *, episode_steps: int = EPISODE_STEPS) -> None:
        self.observation_space = spaces.Box(-np.inf, np.inf, (observation_size,), dtype=np.float32)
        self.action_space = spaces.Discrete(9)
        self._observation = np.full(observation_size, 0.5, dtype=np.float32)
        self._episode_steps = episode_steps
        self._step = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._step = 0
        return self._observation.copy(), {}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._step += 1
        return self._observation.copy(), 0.0, False, self._step >= self._episode_steps, {}


def synthetic_windows(
    sessions: int = SESSIONS, *, validation_sessions: int = VALIDATION_SESSIONS, seed: int = MARKET_SEED
) -> tuple[MarketArrays, MarketArrays]:
    """Train and validation arrays from a synthetic market: the last ``validation_sessions`` validate."""
    bars = generate_market(SyntheticMarketConfig(sessions=sessions), seed=seed).bars
    market = market_arrays(bars, build_features(bars), feature_columns=feature_names())
    market = market.with_regime_score(regime_scores(market.close, session_index=market.session_index))
    last_session = int(market.session_index[-1])
    cut = int(np.flatnonzero(market.session_index > last_session - validation_sessions)[0])
    return market.rows(0, cut), market.rows(cut, None)


def bench_pipeline(train: MarketArrays, validation: MarketArrays, config: TrainingConfig) -> dict[str, float]:
    """One fresh cycle 1 in a temporary folder: its steps/s (learn only) and total wall time."""
    with tempfile.TemporaryDirectory(prefix="bench-training-") as folder:
        started = time.perf_counter()
        result = run_cycle(
            1,
            train=train,
            selection=validation,
            config=config,
            seed=TRAINING_SEED,
            output_dir=Path(folder),
            previous=None,
            baseline=None,
        )
        total = time.perf_counter() - started
    return {
        "steps_per_second": result.metrics["steps_per_second"],
        "timesteps": result.metrics["timesteps"],
        "learn_seconds": result.metrics["wall_seconds"],
        "probe_seconds": result.metrics["probe_seconds"],
        "cycle_seconds": total,
    }


def bench_reference(observation_size: int, settings: PPOSettings, steps: int) -> dict[str, float]:
    """Plain SB3 PPO with ``settings`` on ``n_envs`` constant envs in a DummyVecEnv: steps/s of learn()."""
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(settings.torch_threads)
    try:

        def build() -> ConstantEnv:
            return ConstantEnv(observation_size)

        # The same constructor the pipeline uses, so hyperparameters cannot drift apart; the env is plain SB3.
        model = new_model(DummyVecEnv([build] * settings.n_envs), settings=settings, seed=TRAINING_SEED)
        started = time.perf_counter()
        model.learn(total_timesteps=steps)
        seconds = time.perf_counter() - started
    finally:
        torch.set_num_threads(previous_threads)
    return {"steps_per_second": model.num_timesteps / seconds, "timesteps": float(model.num_timesteps)}


def _full_run(train: MarketArrays, validation: MarketArrays, config: TrainingConfig) -> dict[str, Any]:
    """A default ``run_cycles`` (early stop and rollback apply), then all cycles forced via ``run_cycle``."""
    with tempfile.TemporaryDirectory(prefix="bench-training-full-") as folder:
        started = time.perf_counter()
        outcome = run_cycles(
            train=train, selection=validation, config=config, seed=TRAINING_SEED, output_dir=Path(folder)
        )
        total = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="bench-training-forced-") as folder:
        output = Path(folder)
        previous: Path | None = None
        started = time.perf_counter()
        for cycle in range(1, config.cycles + 1):
            result = run_cycle(
                cycle,
                train=train,
                selection=validation,
                config=config,
                seed=TRAINING_SEED,
                output_dir=output,
                previous=previous,
                baseline=None if cycle == 1 else output / "baseline",
            )
            previous = result.checkpoint
        forced = time.perf_counter() - started
    return {
        "run_cycles_wall_seconds": total,
        "cycles_run": len(outcome.cycles),
        "stopped_early": outcome.stopped_early,
        "reason": outcome.reason,
        "best_cycle": outcome.best_cycle,
        "cycles": [
            {
                "cycle": result.cycle,
                "steps_per_second": result.metrics["steps_per_second"],
                "divergence": result.divergence,
                "rolled_back": result.rolled_back,
                "score": result.evaluation["score"],
                "hold_rate": result.metrics["hold_rate"],
            }
            for result in outcome.cycles
        ],
        "all_cycles_forced": config.cycles,
        "all_cycles_forced_wall_seconds": forced,
    }


def main(argv: list[str] | None = None) -> int:
    """Time both, write ``bench-results/training.json``, print the figures; exit 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each (the median is reported)")
    parser.add_argument("--full", action="store_true", help="also time a whole default run_cycles")
    parser.add_argument("--output", type=Path, default=ROOT / "bench-results" / "training.json")
    args = parser.parse_args(argv)

    prepared = time.perf_counter()
    train, validation = synthetic_windows()
    prepare_seconds = time.perf_counter() - prepared
    config = TrainingConfig(cycles=1, progress_bar=False)
    observation_size = train.features.shape[1] + 2
    # Untimed warm-up of both (first-use costs of torch and SB3 in this process), then alternate.
    bench_reference(observation_size, config.ppo, config.ppo.n_envs * config.ppo.n_steps)
    bench_pipeline(train, validation, config.model_copy(update={"steps_per_cycle": 2_048}))
    pipeline_runs, reference_runs = [], []
    for _ in range(args.runs):
        reference_runs.append(bench_reference(observation_size, config.ppo, config.steps_per_cycle))
        pipeline_runs.append(bench_pipeline(train, validation, config))
    pipeline = statistics.median(run["steps_per_second"] for run in pipeline_runs)
    reference = statistics.median(run["steps_per_second"] for run in reference_runs)
    report: dict[str, Any] = {
        "benchmark": "PPO training steps per second: pipeline cycle vs SB3 on a constant env, same settings",
        "sessions": SESSIONS,
        "validation_sessions": VALIDATION_SESSIONS,
        "train_bars": train.bars,
        "observation_size": observation_size,
        "steps_per_cycle": config.steps_per_cycle,
        "ppo": config.ppo.model_dump(mode="json"),
        "runs": args.runs,
        "statistic": "median",
        "market_prepare_seconds": prepare_seconds,
        "pipeline_steps_per_second": pipeline,
        "reference_steps_per_second": reference,
        "ratio": pipeline / reference,
        "ratio_median_of_pairs": statistics.median(
            run["steps_per_second"] / peer["steps_per_second"]
            for run, peer in zip(pipeline_runs, reference_runs, strict=True)
        ),
        "pipeline_runs": pipeline_runs,
        "reference_runs": reference_runs,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "stable_baselines3": metadata.version("stable-baselines3"),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    if args.full:
        report["full_run"] = _full_run(train, validation, TrainingConfig(progress_bar=False))
    print(f"pipeline cycle (12k steps, learn only): {pipeline:10,.0f} steps/s")
    print(f"SB3 PPO, constant env, same settings:   {reference:10,.0f} steps/s")
    pairs = report["ratio_median_of_pairs"]
    print(f"ratio: {pipeline / reference:.1%} (median of pair ratios {pairs:.1%}; goal >= 90%)")
    probe_share = statistics.median(run["probe_seconds"] / run["learn_seconds"] for run in pipeline_runs)
    report["probe_share_of_learn"] = probe_share
    print(f"reward controller's greedy probe: {probe_share:.1%} of learn() (included in the pipeline figure)")
    if args.full:
        full = report["full_run"]
        seconds, count = full["run_cycles_wall_seconds"], full["cycles_run"]
        print(f"default run_cycles: {seconds:.1f} s, {count} cycles; {full['reason']}")
        forced_seconds = full["all_cycles_forced_wall_seconds"]
        print(f"all {full['all_cycles_forced']} cycles forced: {forced_seconds:.1f} s")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
