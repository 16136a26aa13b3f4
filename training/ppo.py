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
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from pydantic import BaseModel, ConfigDict, Field, model_validator
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecMonitor, VecNormalize

from controllers.reward import AdaptiveRewardController
from controllers.reward_config import RewardControllerConfig
from controllers.trajectory import ControllerTrajectory
from core.spec import HOLD_ACTION
from envs.market_arrays import MarketArrays
from envs.trading import DualTickerTradingEnv, TradingEnvConfig
from training.evaluation import GreedyProbe, LivePolicy
from training.imitation import ImitationConfig

__all__ = [
    "NORMALIZATION_BLOCK_STEPS",
    "NORMALIZE_REWARD",
    "BlockVecNormalize",
    "PPOSettings",
    "TrainingConfig",
    "TrainingMonitor",
    "decisions_per_session",
    "make_training_env",
    "new_model",
    "parameter_divergence",
    "policy_parameters",
    "progress_bar_available",
    "restore_normalization",
    "save_normalization",
    "torch_threads",
]

NORMALIZE_REWARD: bool = True
NORMALIZATION_BLOCK_STEPS = 16
_CLIP_OBSERVATION = 10.0
_CLIP_REWARD = 10.0
_NORMALIZATION_EPSILON = 1e-8
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


class BlockVecNormalize(VecNormalize):
    """``VecNormalize`` (observations and returns) whose running statistics absorb steps in blocks.

    SB3's ``VecNormalize`` merges every vector step into its running mean and variance (two ``np.var``
    calls and a dozen small array operations per step): about 20% of the training throughput at the
    default settings. This subclass keeps the raw observations and discounted returns of the last
    ``block_steps`` vector steps in preallocated arrays and merges them with SB3's own
    ``RunningMeanStd.update`` once per block. The parallel-moments merge is exact, so after each block the
    statistics equal per-step updates (up to floating-point rounding); in between, observations and rewards
    are normalized with the statistics of the last merge, at most ``block_steps`` vector steps old (per-step
    SB3 also folds the current observation in before normalizing it). :meth:`flush` merges a partial block;
    :func:`save_normalization` calls it. Observations must be arrays and ``norm_obs`` must be True; the
    attributes (``obs_rms``, ``ret_rms``, ``clip_obs``, ...) are SB3's, and a plain ``VecNormalize`` given
    the same statistics normalizes the same way (up to float32 rounding).
    """

    def __init__(self, venv: VecEnv, *, block_steps: int = 16, **kwargs: Any) -> None:
        super().__init__(venv, **kwargs)
        if block_steps < 1:
            msg = f"block_steps must be >= 1, got {block_steps}"
            raise ValueError(msg)
        shape = self.observation_space.shape
        if not isinstance(self.observation_space, spaces.Box) or shape is None or not self.norm_obs:
            msg = "BlockVecNormalize needs a Box observation space and norm_obs=True"
            raise ValueError(msg)
        self.block_steps = block_steps
        self._pending = 0
        self._observation_block = np.zeros((block_steps, self.num_envs, *shape), dtype=np.float32)
        self._return_block = np.zeros((block_steps, self.num_envs), dtype=np.float64)
        self.refresh()

    def refresh(self) -> None:
        """Recompute the cached normalization constants from ``obs_rms`` and ``ret_rms``."""
        variance = np.asarray(self.obs_rms.var, dtype=np.float64)  # type: ignore[union-attr]
        self._mean = np.asarray(self.obs_rms.mean, dtype=np.float32)  # type: ignore[union-attr]
        self._scale = (1.0 / np.sqrt(variance + self.epsilon)).astype(np.float32)
        self._reward_scale = float(1.0 / np.sqrt(self.ret_rms.var + self.epsilon))

    def flush(self) -> None:
        """Merge the pending steps of the current block into the running statistics."""
        pending = self._pending
        if pending:
            observations = self._observation_block[:pending]
            self.obs_rms.update(observations.reshape(-1, *observations.shape[2:]))  # type: ignore[union-attr]
            self.ret_rms.update(self._return_block[:pending].reshape(-1))
            self._pending = 0
        self.refresh()

    def _normalize(self, observations: np.ndarray) -> np.ndarray:
        # float32 throughout and maximum/minimum instead of np.clip: a few microseconds per vector step.
        normalized = np.subtract(observations, self._mean, dtype=np.float32)
        normalized *= self._scale
        np.maximum(normalized, -self.clip_obs, out=normalized)
        np.minimum(normalized, self.clip_obs, out=normalized)
        return normalized

    def normalize_obs(self, obs: np.ndarray | dict[str, np.ndarray]) -> np.ndarray | dict[str, np.ndarray]:
        """Normalize with the statistics of the last merge (or of the last restore; see :meth:`refresh`)."""
        if isinstance(obs, dict):
            msg = "BlockVecNormalize normalizes array observations only"
            raise TypeError(msg)
        return self._normalize(obs)

    def step_wait(self) -> Any:
        """Step the wrapped envs; record the raw step in the block; return normalized values."""
        observations, rewards, dones, infos = self.venv.step_wait()
        self.old_obs = observations
        self.old_reward = rewards
        if self.training:
            returns = self.returns
            returns *= self.gamma
            returns += rewards
            slot = self._pending
            self._observation_block[slot] = observations
            self._return_block[slot] = returns
            self._pending = slot + 1
            if self._pending == self.block_steps:
                self.flush()
        normalized = self._normalize(observations)  # type: ignore[arg-type]
        if self.norm_reward:
            scaled = np.multiply(rewards, self._reward_scale, dtype=np.float32)
            np.maximum(scaled, -self.clip_reward, out=scaled)
            np.minimum(scaled, self.clip_reward, out=scaled)
            rewards = scaled
        else:
            rewards = rewards.astype(np.float32)
        if dones.any():
            for index in np.flatnonzero(dones).tolist():
                terminal = infos[index].get("terminal_observation")
                if terminal is not None:
                    infos[index]["terminal_observation"] = self._normalize(terminal)
            self.returns[dones] = 0.0
        return normalized, rewards, dones, infos

    def reset(self) -> np.ndarray | dict[str, np.ndarray]:
        """Reset the envs and the returns; the first observations enter the statistics at once (as SB3)."""
        observations = self.venv.reset()
        self.old_obs = observations
        self.returns = np.zeros(self.num_envs)
        if self.training:
            self.obs_rms.update(observations)  # type: ignore[union-attr, arg-type]
            self.refresh()
        return self._normalize(observations)  # type: ignore[arg-type]


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
        clip_obs=_CLIP_OBSERVATION,
        clip_reward=_CLIP_REWARD,
        gamma=config.ppo.gamma,
        epsilon=_NORMALIZATION_EPSILON,
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


def save_normalization(env: VecNormalize, path: Path) -> Path:
    """Write ``env``'s observation and return statistics and settings to an ``.npz`` (no pickle).

    A :class:`BlockVecNormalize` merges its pending steps first.
    """
    if isinstance(env, BlockVecNormalize):
        env.flush()
    path = Path(path)
    with path.open("wb") as handle:
        np.savez(
            handle,
            observation_mean=env.obs_rms.mean,  # type: ignore[union-attr]
            observation_var=env.obs_rms.var,  # type: ignore[union-attr]
            observation_count=np.float64(env.obs_rms.count),  # type: ignore[union-attr]
            return_mean=np.float64(env.ret_rms.mean),
            return_var=np.float64(env.ret_rms.var),
            return_count=np.float64(env.ret_rms.count),
            clip_observation=np.float64(env.clip_obs),
            clip_reward=np.float64(env.clip_reward),
            epsilon=np.float64(env.epsilon),
            gamma=np.float64(env.gamma),
        )
    return path


def restore_normalization(env: VecNormalize, path: Path) -> None:
    """Load statistics written by :func:`save_normalization` into ``env`` (``ValueError``: wrong shape)."""
    with np.load(Path(path), allow_pickle=False) as saved:
        values = {name: saved[name] for name in saved.files}
    expected = env.obs_rms.mean.shape  # type: ignore[union-attr]
    if values["observation_mean"].shape != expected:
        msg = (
            f"normalization statistics in {path} have observation shape {values['observation_mean'].shape}, "
            f"the env {expected}"
        )
        raise ValueError(msg)
    if isinstance(env, BlockVecNormalize):
        env.flush()  # steps still pending belong to the statistics being replaced
    env.obs_rms.mean = values["observation_mean"].astype(np.float64)  # type: ignore[union-attr]
    env.obs_rms.var = values["observation_var"].astype(np.float64)  # type: ignore[union-attr]
    env.obs_rms.count = float(values["observation_count"])  # type: ignore[union-attr]
    env.ret_rms.mean = np.float64(values["return_mean"])
    env.ret_rms.var = np.float64(values["return_var"])
    env.ret_rms.count = float(values["return_count"])
    env.clip_obs = float(values["clip_observation"])
    env.clip_reward = float(values["clip_reward"])
    env.epsilon = float(values["epsilon"])
    if isinstance(env, BlockVecNormalize):
        env.refresh()


def decisions_per_session(market: MarketArrays) -> float:
    """Mean decision steps per usable session (bars - 1 of each session with at least two bars)."""
    counts = np.bincount(market.session_index - market.session_index[0])
    usable = counts[counts >= 2]
    if usable.size == 0:
        msg = "the market has no session with at least two bars"
        raise ValueError(msg)
    return float(np.mean(usable - 1))


_UPDATE_KEYS = {
    "entropy": "train/entropy_loss",
    "explained_variance": "train/explained_variance",
    "approx_kl": "train/approx_kl",
    "clip_fraction": "train/clip_fraction",
    "value_loss": "train/value_loss",
    "policy_gradient_loss": "train/policy_gradient_loss",
}
_COST_KEYS = ("cost_ticket", "cost_spread_fee", "cost_impact", "cost_total")


class TrainingMonitor(BaseCallback):
    """Collects a cycle's metrics while PPO learns and runs the reward controller's control step per rollout.

    Per vector step it takes the finished episodes' totals from ``info`` (VecMonitor's raw episode reward
    and length; the env's return, costs and order count). After each rollout is collected (before PPO's
    update) it replays the greedy policy over the rollout's bars (:func:`training.behaviour.greedy_replay`),
    counts the sampled actions' orders the same way, and hands both to the controller
    (:meth:`~controllers.reward.AdaptiveRewardController.observe`), whose new hold bonus and ticket cost shape
    the next rollout; the snapshot goes into :attr:`trajectory`. With the controller switched off
    (``controller.enabled`` false: the envs have none) the measurement is still taken and recorded, and
    nothing is fed back. It also reads SB3's ``train/*`` values after each PPO update (the update runs after
    the rollout's log dump, so they are still in the logger at the next rollout start or at training end)
    into :attr:`learning_curve`, one row per update with its step.
    """

    def __init__(
        self, controller: AdaptiveRewardController, *, probe: GreedyProbe, decisions_per_session: float, shaping: bool = True
    ) -> None:
        super().__init__(verbose=0)
        self.controller = controller
        self.probe = probe
        self.shaping = shaping
        self.decisions = decisions_per_session
        self.trajectory = ControllerTrajectory()
        self._rollout_episodes = 0
        self.probe_seconds = 0.0
        self.steps = 0
        self.holds = 0
        self.episode_rewards: list[float] = []
        self.episode_lengths: list[int] = []
        self.episode_returns: list[float] = []
        self.episode_orders: list[int] = []
        self.episode_costs: dict[str, list[float]] = {key: [] for key in _COST_KEYS}
        self.update_values: dict[str, list[float]] = {key: [] for key in _UPDATE_KEYS}
        self.learning_curve: list[dict[str, float]] = []
        self._updates_read = 0

    def _on_training_start(self) -> None:
        self._updates_read = self.model._n_updates

    def _on_rollout_start(self) -> None:
        self._read_update()

    def _on_training_end(self) -> None:
        self._read_update()

    def _read_update(self) -> None:
        updates = self.model._n_updates
        if updates == self._updates_read:
            return
        self._updates_read = updates
        values = self.model.logger.name_to_value
        row = {"step": float(self.model.num_timesteps)}
        for name, key in _UPDATE_KEYS.items():
            if key in values:
                value = float(values[key])
                value = -value if name == "entropy" else value
                self.update_values[name].append(value)
                row[name] = value
        self.learning_curve.append(row)

    def _on_rollout_end(self) -> None:
        # Once per rollout (nothing of this runs per env step): the buffer holds exactly this rollout.
        actions = self.model.rollout_buffer.actions
        holds = int(np.count_nonzero(actions == HOLD_ACTION))
        self.steps += int(actions.size)
        self.holds += holds
        finished = self.episode_lengths[self._rollout_episodes :]
        orders = self.episode_orders[self._rollout_episodes :]
        self._rollout_episodes = len(self.episode_lengths)
        sampled = sum(orders) / sum(finished) * self.decisions if finished else float("nan")
        policy = LivePolicy(self.model, self.training_env)  # type: ignore[arg-type]
        started = time.perf_counter()
        greedy, regime_score = self.probe.measure(policy)
        self.probe_seconds += time.perf_counter() - started
        snapshot = self.controller.observe(
            greedy,
            regime_score=regime_score,
            steps=int(self.model.num_timesteps),
            sampled_trades_per_day=sampled,
            sampled_hold_action_rate=holds / actions.size,
        )
        self.trajectory.append(snapshot)

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" not in info:
                continue
            episode = info["episode"]
            self.episode_rewards.append(float(episode["r"]))
            self.episode_lengths.append(int(episode["l"]))
            self.episode_returns.append(float(info["episode_return"]))
            self.episode_orders.append(int(info["agent_orders"]))
            for key in _COST_KEYS:
                self.episode_costs[key].append(float(info[key]))
        return True

    def metrics(self, *, decisions_per_session: float) -> dict[str, float]:
        """The cycle's metrics as a flat dict of floats; episode values are NaN when no episode finished.

        ``trades_per_day``: agent orders per step over the finished episodes, times the mean decision steps
        of a session (a rate per full session, also for episodes cut short by a risk stop). Update values are
        means over the cycle's PPO updates (``entropy`` is the policy entropy, minus SB3's entropy loss).
        """
        nan = float("nan")
        episodes = len(self.episode_rewards)
        steps_in_episodes = sum(self.episode_lengths)
        controller = self.controller
        metrics: dict[str, float] = {
            "episodes": float(episodes),
            "episode_reward_mean": float(np.mean(self.episode_rewards)) if episodes else nan,
            "episode_length_mean": float(np.mean(self.episode_lengths)) if episodes else nan,
            "episode_return_pct_mean": 100.0 * float(np.mean(self.episode_returns)) if episodes else nan,
            "hold_rate": self.holds / self.steps if self.steps else nan,
            "trades_per_day": (
                sum(self.episode_orders) / steps_in_episodes * decisions_per_session
                if steps_in_episodes
                else nan
            ),
            "agent_orders_mean": float(np.mean(self.episode_orders)) if episodes else nan,
        }
        for key in _COST_KEYS:
            metrics[f"{key}_mean"] = float(np.mean(self.episode_costs[key])) if episodes else nan
        frame = self.trajectory.to_frame()
        last = frame.row(-1, named=True) if frame.height else {}

        def latest(name: str) -> float:
            value = last.get(name)
            return nan if value is None else float(value)

        metrics |= {
            "probe_seconds": self.probe_seconds,
            "greedy_trades_per_day": latest("greedy_trades_per_day"),
            "greedy_idle_rate": latest("greedy_idle_rate"),
            "greedy_hold_action_rate": latest("greedy_hold_action_rate"),
            "sampled_trades_per_day": latest("sampled_trades_per_day"),
            "controller_hold_bonus": float(controller.hold_bonus) if self.shaping else nan,
            "controller_ticket_cost": float(controller.ticket_cost) if self.shaping else nan,
            "controller_target_trades_per_day": float(controller.target_trades_per_day),
            "controller_setpoint_trades_per_day": float(controller.setpoint_trades_per_day),
            "controller_target_scale": float(controller.target_scale),
            "controller_slow_adjustment": float(controller.slow_adjustment),
        }
        for name, values in self.update_values.items():
            metrics[name] = float(np.mean(values)) if values else nan
        metrics["updates"] = float(len(self.update_values["approx_kl"]))
        return metrics
