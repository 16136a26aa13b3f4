"""PPO building blocks for the training cycles: settings, the vectorized training env, metrics, divergence.

The training env (:func:`make_training_env`) is ``n_envs`` :class:`~envs.trading.DualTickerTradingEnv`
instances in one process (a ``DummyVecEnv`` with a leaner step), wrapped in ``VecMonitor`` (episode reward and
length from the raw rewards) and :class:`BlockVecNormalize` (SB3's ``VecNormalize`` with its statistics
updated in blocks of steps; same statistics, a fifth more throughput). Choices, and why:

* **One controller shared by all envs.** ``DummyVecEnv`` steps its envs one after the other in rank order, so
  the shared :class:`~controllers.reward.AdaptiveRewardController` sees one deterministic interleaved stream
  of ``n_envs`` steps per vector step. Its hold rate is then the hold rate of the policy across all envs,
  which is the quantity the controller is meant to regulate (per-env controllers would regulate eight
  noisy sub-samples of the same policy and save eight states per checkpoint).
* **Observation normalization** (``norm_obs=True``): the features mix returns (~1e-3), oscillators in
  [0, 1] and z-scores; running mean and variance bring them to one scale. The statistics belong to the
  policy, so every checkpoint saves them (:func:`save_normalization`, a plain ``.npz``, no pickle) and a
  warm start or a continued cycle restores them (:func:`restore_normalization`).
* **Reward normalization** (``norm_reward=True``, :data:`NORMALIZE_REWARD`): the per-step reward is small
  (PnL in percent of capital per bar, ~1e-3 to 1e-2, plus shaping of the same order) and its scale moves
  as the controller retunes the hold bonus and ticket cost. Dividing by the running standard deviation of
  the discounted return keeps the value targets near unit scale across cycles. The running return
  statistics are saved and restored with the observation statistics. Episode rewards in metrics and every
  evaluation use the raw (unnormalized) rewards.

Seeding: PPO's ``seed`` seeds Python, numpy and torch and the envs (``seed + rank`` at their next reset);
with ``torch_threads`` threads (default 1) the same seed gives the same result on CPU.
"""

import importlib.util
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from stable_baselines3 import PPO
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecMonitor, VecNormalize

from controllers.reward import AdaptiveRewardController
from controllers.reward_config import RewardControllerConfig
from envs.market_arrays import MarketArrays
from envs.trading import DualTickerTradingEnv
from envs.trading_config import TradingEnvConfig
from training.imitation import ImitationConfig
from training.normalization import (
    CLIP_OBSERVATION,
    CLIP_REWARD,
    NORMALIZATION_BLOCK_STEPS,
    NORMALIZATION_EPSILON,
    BlockVecNormalize,
)

__all__ = [
    "NORMALIZE_REWARD",
    "PPOSettings",
    "TrainingConfig",
    "decisions_per_session",
    "make_training_env",
    "new_model",
    "parameter_divergence",
    "policy_parameters",
    "progress_bar_available",
    "torch_threads",
]

NORMALIZE_REWARD: bool = True
_FROZEN = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class PPOSettings(BaseModel):
    """SB3 PPO hyperparameters; the defaults are tuned for throughput on 2 CPU cores (see NOTES.md)."""

    model_config = _FROZEN

    n_envs: int = Field(
        8, ge=1, description="Envs stepped in one process (DummyVecEnv), sharing one controller."
    )
    n_steps: int = Field(256, ge=1, description="Steps per env per rollout (rollout = n_envs * n_steps).")
    batch_size: int = Field(
        256, ge=2, description="Minibatch size of the gradient steps; the main throughput lever on CPU."
    )
    n_epochs: int = Field(4, ge=1, description="Passes over each rollout.")
    learning_rate: float = Field(3e-4, gt=0.0, description="Adam learning rate (constant).")
    gamma: float = Field(0.99, gt=0.0, le=1.0, description="Discount factor (also VecNormalize's).")
    gae_lambda: float = Field(0.95, ge=0.0, le=1.0, description="GAE lambda.")
    clip_range: float = Field(0.2, gt=0.0, description="PPO policy clipping range.")
    ent_coef: float = Field(0.01, ge=0.0, description="Entropy bonus coefficient.")
    vf_coef: float = Field(0.5, ge=0.0, description="Value loss coefficient.")
    max_grad_norm: float = Field(0.5, gt=0.0, description="Gradient norm clip.")
    net_arch: tuple[int, ...] = Field(
        (64, 64), min_length=1, description="Hidden layer widths of the separate policy and value MLPs."
    )
    torch_threads: int = Field(
        1, ge=1, description="torch CPU threads while training (1: a second thread never helped, NOTES.md)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> "PPOSettings":
        if any(width < 1 for width in self.net_arch):
            msg = f"net_arch widths must be >= 1, got {self.net_arch}"
            raise ValueError(msg)
        if self.n_envs * self.n_steps < 2:
            msg = f"a rollout needs at least 2 steps: n_envs * n_steps = {self.n_envs * self.n_steps}"
            raise ValueError(msg)
        if self.batch_size > self.n_envs * self.n_steps:
            msg = (
                f"batch_size {self.batch_size} exceeds the rollout size n_envs * n_steps = "
                f"{self.n_envs * self.n_steps}"
            )
            raise ValueError(msg)
        return self


class TrainingConfig(BaseModel):
    """The training cycles: budget, early stop, divergence limit, evaluation, PPO, env and controller."""

    model_config = _FROZEN

    cycles: int = Field(4, ge=1, description="Training cycles (each continues the previous one).")
    steps_per_cycle: int = Field(
        12_000,
        ge=1,
        description="Env steps per cycle; SB3 rounds up to whole rollouts (12,000 -> 12,288 at defaults).",
    )
    min_improvement: float = Field(
        0.05,
        ge=0.0,
        description="Stop when a cycle improves the evaluation score by less than this share of the best "
        "earlier score (see training.cycles.should_stop).",
    )
    max_divergence: float = Field(
        0.15,
        gt=0.0,
        description="Roll a cycle back when ||weights - baseline|| / ||baseline|| exceeds this (baseline: "
        "the weights at the start of cycle 1).",
    )
    eval_sessions: int | None = Field(
        None, ge=1, description="Selection-window sessions evaluated per cycle, from the first; None: all of them."
    )
    selection_trades_band: tuple[float, float] | None = Field(
        (5.0, 25.0),
        description="The best cycle is picked among those whose greedy trades per day on the selection window "
        "lie in this band (the gate's trades_per_day band), when any does; None: by score alone.",
    )
    progress_bar: bool = Field(True, description="Show SB3's progress bar (tqdm + rich) while training.")
    ppo: PPOSettings = Field(default_factory=PPOSettings, description="PPO hyperparameters.")
    env: TradingEnvConfig = Field(default_factory=TradingEnvConfig, description="Trading env settings.")
    controller: RewardControllerConfig = Field(
        default_factory=RewardControllerConfig, description="Adaptive reward controller settings."
    )
    imitation: ImitationConfig = Field(
        default_factory=ImitationConfig,
        description="Kickstart of fresh agents: behaviour cloning of the signal rule before cycle 1.",
    )


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads, restoring the previous count afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def progress_bar_available() -> bool:
    """Whether SB3's progress bar can run (it needs both ``tqdm`` and ``rich``)."""
    return all(importlib.util.find_spec(name) is not None for name in ("tqdm", "rich"))


class _FreshInfoVecEnv(DummyVecEnv):
    """``DummyVecEnv`` with a leaner ``step_wait`` (same semantics) for a Box-observation env.

    :class:`~envs.trading.DualTickerTradingEnv` returns a fresh info dict and a fresh observation every
    step (its documented contract), so the info list is handed over as a shallow copy instead of SB3's deep
    copy of eight small dicts per vector step; actions go to the envs as Python ints and observations are
    written straight into SB3's buffer array. Together about a third of the vector env's own time.
    """

    def step_wait(self) -> Any:
        """Step each env in rank order, resetting the finished ones (SB3's rules), shallow-copying infos."""
        observations = self.buf_obs[None]  # the (n_envs, size) array behind SB3's buffers for a Box space
        infos = self.buf_infos
        rewards = self.buf_rews
        dones = self.buf_dones
        for index, (env, action) in enumerate(zip(self.envs, self.actions.tolist(), strict=True)):
            observation, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            rewards[index] = reward
            dones[index] = done
            info["TimeLimit.truncated"] = truncated and not terminated
            if done:
                info["terminal_observation"] = observation
                observation, self.reset_infos[index] = env.reset()
            infos[index] = info
            observations[index] = observation
        return observations.copy(), rewards.copy(), dones.copy(), list(infos)


def make_training_env(
    market: MarketArrays, *, config: TrainingConfig, seed: int, controller: AdaptiveRewardController
) -> VecNormalize:
    """``n_envs`` trading envs over ``market`` sharing ``controller``, seeded ``seed + rank``, normalized.

    With ``config.controller.enabled`` false the envs get no controller (the reward is the PnL alone).

    Layers: a ``DummyVecEnv`` (without its per-step deep copy of the infos) -> ``VecMonitor`` ->
    :class:`BlockVecNormalize` (``norm_obs=True``, ``norm_reward=NORMALIZE_REWARD``,
    ``gamma=config.ppo.gamma``) in training mode with fresh statistics (see :func:`restore_normalization`).
    """
    env_config = config.env

    shaping = controller if config.controller.enabled else None

    def build() -> DualTickerTradingEnv:
        return DualTickerTradingEnv(market, config=env_config, controller=shaping)

    vector = _FreshInfoVecEnv([build] * config.ppo.n_envs)
    vector.seed(seed)
    return BlockVecNormalize(
        VecMonitor(vector),
        block_steps=NORMALIZATION_BLOCK_STEPS,
        training=True,
        norm_obs=True,
        norm_reward=NORMALIZE_REWARD,
        clip_obs=CLIP_OBSERVATION,
        clip_reward=CLIP_REWARD,
        gamma=config.ppo.gamma,
        epsilon=NORMALIZATION_EPSILON,
    )


def new_model(env: VecEnv, *, settings: PPOSettings, seed: int | None) -> PPO:
    """A fresh SB3 PPO (MLP policy, CPU) with ``settings``, logging to no output.

    ``seed`` seeds Python, numpy, torch and the envs (SB3's ``set_random_seed``); None leaves every random
    generator as it is (for a model whose weights are loaded right after).
    """
    model = PPO(
        "MlpPolicy",
        env,
        learning_rate=settings.learning_rate,
        n_steps=settings.n_steps,
        batch_size=settings.batch_size,
        n_epochs=settings.n_epochs,
        gamma=settings.gamma,
        gae_lambda=settings.gae_lambda,
        clip_range=settings.clip_range,
        ent_coef=settings.ent_coef,
        vf_coef=settings.vf_coef,
        max_grad_norm=settings.max_grad_norm,
        policy_kwargs={"net_arch": list(settings.net_arch)},
        verbose=0,
        seed=seed,
        device="cpu",
    )
    # A logger with no output: the values stay readable in ``name_to_value`` (TrainingMonitor) and nothing
    # is printed or written.
    model.set_logger(Logger(folder=None, output_formats=[]))
    return model


def policy_parameters(model: PPO) -> dict[str, torch.Tensor]:
    """A detached copy of the policy's (actor, critic, shared extractor) state dict."""
    return {name: tensor.detach().clone() for name, tensor in model.policy.state_dict().items()}


def parameter_divergence(current: Mapping[str, torch.Tensor], baseline: Mapping[str, torch.Tensor]) -> float:
    """``||current - baseline|| / ||baseline||``: L2 norms over all floating-point tensors, in float64.

    Both mappings must hold the same names with the same shapes. Raises ``ValueError`` when they do not or
    when the baseline's norm is zero (the ratio is undefined).
    """
    if set(current) != set(baseline):
        only_current = sorted(set(current) - set(baseline))
        only_baseline = sorted(set(baseline) - set(current))
        msg = f"parameter names differ: only in current {only_current}, only in baseline {only_baseline}"
        raise ValueError(msg)
    difference_square = 0.0
    baseline_square = 0.0
    for name, reference in baseline.items():
        tensor = current[name]
        if tensor.shape != reference.shape:
            msg = f"parameter {name!r} has shape {tuple(tensor.shape)}, baseline {tuple(reference.shape)}"
            raise ValueError(msg)
        if not (tensor.is_floating_point() and reference.is_floating_point()):
            continue
        reference64 = reference.detach().to(torch.float64)
        difference_square += float(torch.sum((tensor.detach().to(torch.float64) - reference64) ** 2))
        baseline_square += float(torch.sum(reference64**2))
    if not baseline_square > 0.0:
        msg = "the baseline parameters have zero L2 norm: the relative divergence is undefined"
        raise ValueError(msg)
    return math.sqrt(difference_square) / math.sqrt(baseline_square)


def decisions_per_session(market: MarketArrays) -> float:
    """Mean decision steps per usable session (bars - 1 of each session with at least two bars)."""
    counts = np.bincount(market.session_index - market.session_index[0])
    usable = counts[counts >= 2]
    if usable.size == 0:
        msg = "the market has no session with at least two bars"
        raise ValueError(msg)
    return float(np.mean(usable - 1))


