"""The one evaluation loop: many one-session episodes stepped in lockstep, one policy call per step.

Everything that plays a policy through whole sessions runs :func:`evaluate_episodes`: the training cycles'
scoring on the selection window and the reward controller's greedy probe (:mod:`training.evaluation`), the
validation scenarios of the gate (:mod:`stairways.assessment`) and the registry replay check
(:mod:`stairways.replay`).

:func:`evaluate_episodes` gives every episode its own :class:`~envs.trading.DualTickerTradingEnv` (the
training env config with ``sessions_per_episode = 1``: same costs, same risk limits) and steps all running
episodes together: at each step it stacks their observations, asks the policy for all actions at once (one
batched forward pass instead of one per episode), then steps each env. An episode is one session from its
first bar, as the training evaluation does; an episode stops early only on the drawdown limit. The result
does not depend on the order of the episodes.

**Policies** are any object with ``predict(observations) -> actions``: raw (unnormalized) float32
observations ``(n, observation size)`` in, deterministic int64 actions ``(n,)`` out.
:class:`training.checkpoints.LoadedPolicy` normalizes the observations itself; the baselines of
:mod:`envs.policies` read them raw.

**Controller.** The reward shaping of the env (hold bonus, ticket cost) needs the adaptive reward
controller. Each episode gets its own controller: restored from ``controller_state`` (with
``controller_config``) when given, else ``policy.controller()`` when the policy has that method (a
:class:`~training.checkpoints.LoadedPolicy` returns one restored from its checkpoint), else none. The controller
only changes the reward (``EpisodeRecord.reward``/``rewards``), never the fills, equity or any metric
computed from equity and positions; the shaping terms enter the reward only.

**Recording.** Everything is written into arrays preallocated for ``(episodes, longest episode)`` (no
per-step containers): after each step the equity (cash plus positions marked at the bar's close), positions
in units and in shares, the action and the reward; the bar prices are copied from the episode. Costs and
order counts come from the env's final-step ``info``; the idle steps (no agent order filled) are counted. :class:`EpisodeRecord` holds one episode's slices.

:class:`EpisodeSequenceEnv` walks a list of episodes one after the other as a single gymnasium env: the
reference for checking this evaluator against SB3's ``evaluate_policy`` (``benchmarks/bench_evaluation.py``).
"""

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import gymnasium
import numpy as np

from controllers.reward import AdaptiveRewardController
from controllers.reward_config import RewardControllerConfig
from envs.market_arrays import MarketArrays
from envs.trading import DualTickerTradingEnv
from envs.trading_config import TradingEnvConfig

__all__ = [
    "COST_COMPONENTS",
    "ControllerFactory",
    "EpisodeRecord",
    "EpisodeSequenceEnv",
    "Policy",
    "evaluate_episodes",
    "session_markets",
]

ControllerFactory = Callable[[], AdaptiveRewardController | None]
"""Returns a fresh reward controller for one episode (or None for no shaping)."""

COST_COMPONENTS: tuple[str, ...] = ("ticket", "spread_fee", "impact", "total")
"""Keys of :attr:`EpisodeRecord.costs` (dollars per episode, as the env's ``cost_breakdown``)."""


@runtime_checkable
class Policy(Protocol):
    """What the evaluator needs: deterministic actions for a batch of raw observations."""

    def predict(self, observations: np.ndarray) -> np.ndarray:
        """int64 actions ``(n,)`` in [0, 8] for float32 observations ``(n, observation size)``."""
        ...


@dataclass(frozen=True, eq=False)
class EpisodeRecord:
    """One evaluated episode. ``L = length`` steps; row ``k`` of the ``L + 1``-row arrays is after step ``k``.

    Row 0 is the state at reset (flat, ``equity[0]`` the initial capital) at the episode's first bar; step
    ``k`` fills orders at bar ``k``'s open and marks everything at bar ``k``'s close (bar indices within the
    episode). At the last step of a session, and on a risk stop, the env flattens at that bar's close.
    """

    session: str
    """Label of the episode (the session's New York date when the caller gave one, else its index)."""
    equity: np.ndarray
    """float64 ``(L + 1,)``: cash plus positions at the bar's close, dollars."""
    positions: np.ndarray
    """float64 ``(L + 1, 2)``: positions in units (in [-1, 1]) of the two tickers."""
    shares: np.ndarray
    """float64 ``(L + 1, 2)``: positions in (fractional) shares."""
    open: np.ndarray
    """float64 ``(L + 1, 2)``: open price of each bar of the episode."""
    close: np.ndarray
    """float64 ``(L + 1, 2)``: close price of each bar of the episode."""
    actions: np.ndarray
    """int64 ``(L,)``: the action decided before each step."""
    orders: np.ndarray
    """int64 ``(L,)``: tickers whose share count changed in each step (0, 1 or 2; includes flattening)."""
    rewards: np.ndarray
    """float64 ``(L,)``: the env's reward of each step (PnL term plus controller shaping)."""
    costs: dict[str, float]
    """Episode costs in dollars by :data:`COST_COMPONENTS`: ticket, spread and fees, impact, total."""
    agent_orders: int
    """Orders of the agent that filled (the env's count; flattening orders excluded)."""
    flatten_orders: int
    partial_fills: int
    daily_loss_stops: int
    loss_streak_stops: int
    terminated_early: bool
    """True when the maximum-drawdown limit ended the episode before the session's end."""
    length: int
    reward: float
    """Sum of ``rewards`` (float64)."""
    bar_minutes: int
    """Bar size in minutes (the median spacing of the episode's timestamps)."""
    initial_capital: float
    sessions: int = 1
    """Sessions the episode spans (always 1 from :func:`evaluate_episodes`)."""
    idle_steps: int = 0
    """Steps on which no agent order filled (a hold, a buy while long, a sell while short, a refused order)."""

    @property
    def returns(self) -> np.ndarray:
        """Per-bar (per-step) simple returns of equity, ``(L,)``."""
        return self.equity[1:] / self.equity[:-1] - 1.0

    @property
    def total_return(self) -> float:
        """Episode return as a fraction of the initial capital."""
        return float(self.equity[-1] / self.equity[0] - 1.0)


def _bar_minutes(market: MarketArrays) -> int:
    spacing = np.diff(market.timestamps).astype("timedelta64[s]").astype(np.float64) / 60.0
    spacing = spacing[spacing > 0.0]
    if spacing.size == 0:
        return 1
    return max(1, round(float(np.median(spacing))))


def _controller_factory(
    policy: Any,
    controller_state: Mapping[str, float | int] | None,
    controller_config: RewardControllerConfig | None,
) -> ControllerFactory:
    """A callable returning a fresh controller per episode (or None), following the module docstring."""
    if controller_state is not None:
        state = dict(controller_state)
        config = controller_config if controller_config is not None else RewardControllerConfig()

        def restored() -> AdaptiveRewardController:
            controller = AdaptiveRewardController(config)
            controller.load_state_dict(state)
            return controller

        return restored
    factory = getattr(policy, "controller", None)
    if callable(factory):
        return factory  # type: ignore[no-any-return]
    return lambda: None


def session_markets(market: MarketArrays) -> list[MarketArrays]:
    """One market per session with at least two bars, in time order: the episodes of :func:`evaluate_episodes`."""
    return [market.rows(first, end) for first, end in market.session_bounds()]


def _episode_env(
    market: MarketArrays, *, index: int, config: TradingEnvConfig, controller: AdaptiveRewardController | None
) -> DualTickerTradingEnv:
    env = DualTickerTradingEnv(market, config=config, controller=controller)
    if len(env.session_starts) != 1:
        message = (
            f"episode {index} holds {len(env.session_starts)} sessions; each episode must be one session "
            "(split a window with envs.evaluation.session_markets)"
        )
        raise ValueError(message)
    return env


def _one_session_config(env_config: TradingEnvConfig) -> TradingEnvConfig:
    return TradingEnvConfig.model_validate({**env_config.model_dump(), "sessions_per_episode": 1})


def evaluate_episodes(
    policy: Policy,
    episodes: Sequence[MarketArrays],
    *,
    env_config: TradingEnvConfig,
    controller_state: Mapping[str, float | int] | None = None,
    controller_config: RewardControllerConfig | None = None,
    sessions: Sequence[str] | None = None,
) -> list[EpisodeRecord]:
    """Run ``policy`` deterministically on every episode (one session each), all in lockstep.

    Args:
        policy: ``predict(observations (n, size) float32) -> actions (n,) int64`` on raw observations.
        episodes: one-session markets (e.g. :attr:`validation.scenarios.Scenario.episodes`), all with the
            same observation layout.
        env_config: the training env config (costs, risk limits); ``sessions_per_episode`` is set to 1.
        controller_state: reward controller state restored into each episode's controller (see the module
            docstring for the default when None).
        controller_config: config of that controller (default config when None).
        sessions: labels of the episodes (default: their index as text).

    Returns:
        One :class:`EpisodeRecord` per episode, in the order given (empty for no episodes).

    Raises:
        ValueError: an episode with more or fewer than one usable session, observation layouts that differ,
            ``sessions`` of the wrong length, or a policy returning the wrong number of actions.
    """
    count = len(episodes)
    if sessions is not None and len(sessions) != count:
        message = f"sessions has {len(sessions)} labels for {count} episodes"
        raise ValueError(message)
    if count == 0:
        return []
    config = _one_session_config(env_config)
    make_controller = _controller_factory(policy, controller_state, controller_config)
    envs = [
        _episode_env(market, index=index, config=config, controller=make_controller())
        for index, market in enumerate(episodes)
    ]
    names = episodes[0].feature_names
    for index, market in enumerate(episodes):
        if market.feature_names != names:
            message = f"episode {index} observes {len(market.feature_names)} other features than episode 0"
            raise ValueError(message)

    steps = max(market.bars for market in episodes) - 1
    size = int(envs[0].observation_space.shape[0])  # type: ignore[index]
    observations = np.empty((count, size), dtype=np.float32)
    equity = np.zeros((count, steps + 1))
    positions = np.zeros((count, steps + 1, 2))
    shares = np.zeros((count, steps + 1, 2))
    actions = np.zeros((count, steps), dtype=np.int64)
    rewards = np.zeros((count, steps))
    lengths = [0] * count
    idle = [0] * count
    finals: list[dict[str, Any]] = [{}] * count
    for index, env in enumerate(envs):
        observation, _ = env.reset(seed=0, options={"start_session": 0})
        observations[index] = observation
        equity[index, 0] = env.equity

    # Flat memoryviews of the preallocated arrays: a scalar write through one costs about half a numpy
    # item assignment, and the step loop makes six per episode and step.
    rows = steps + 1
    equity_view = memoryview(equity.reshape(-1))
    reward_view = memoryview(rewards.reshape(-1))
    position_view = memoryview(positions.reshape(-1))
    share_view = memoryview(shares.reshape(-1))
    active = list(range(count))
    step = 0
    while active:
        batch = observations if len(active) == count else observations[active]
        chosen = np.asarray(policy.predict(batch))
        if chosen.shape != (len(active),):
            message = f"policy.predict returned shape {chosen.shape} for {len(active)} observations"
            raise ValueError(message)
        actions[active, step] = chosen
        row = step + 1
        still_active = []
        for index, action in zip(active, chosen.tolist(), strict=True):
            env = envs[index]
            orders_before = env.agent_orders
            observation, reward, terminated, truncated, info = env.step(action)
            if env.agent_orders == orders_before:
                idle[index] += 1
            slot = index * rows + row
            reward_view[slot - index - 1] = reward
            equity_view[slot] = info["equity"]
            first, second = env.positions
            position_view[2 * slot] = first
            position_view[2 * slot + 1] = second
            first, second = env.shares
            share_view[2 * slot] = first
            share_view[2 * slot + 1] = second
            if terminated or truncated:
                lengths[index] = row
                finals[index] = info
            else:
                observations[index] = observation
                still_active.append(index)
        active = still_active
        step = row

    records = []
    for index, market in enumerate(episodes):
        length = lengths[index]
        info = finals[index]
        bars = slice(0, length + 1)
        episode_shares = shares[index, bars].copy()
        record_rewards = rewards[index, :length].copy()
        records.append(
            EpisodeRecord(
                session=sessions[index] if sessions is not None else str(index),
                equity=equity[index, bars].copy(),
                positions=positions[index, bars].copy(),
                shares=episode_shares,
                open=market.open[bars].copy(),
                close=market.close[bars].copy(),
                actions=actions[index, :length].copy(),
                orders=np.count_nonzero(np.diff(episode_shares, axis=0), axis=1).astype(np.int64),
                rewards=record_rewards,
                costs={name: float(info[f"cost_{name}"]) for name in COST_COMPONENTS},
                agent_orders=int(info["agent_orders"]),
                flatten_orders=int(info["flatten_orders"]),
                partial_fills=int(info["partial_fills"]),
                daily_loss_stops=int(info["daily_loss_stops"]),
                loss_streak_stops=int(info["loss_streak_stops"]),
                terminated_early=bool(info["drawdown_stop"]),
                length=length,
                reward=float(math.fsum(record_rewards.tolist())),
                bar_minutes=_bar_minutes(market),
                initial_capital=float(config.initial_capital),
                idle_steps=idle[index],
            )
        )
    return records


class EpisodeSequenceEnv(gymnasium.Env[np.ndarray, np.int64]):
    """The episodes as one env, walked in order: each ``reset`` starts the next (after the last, the first).

    Every episode is a fresh :class:`~envs.trading.DualTickerTradingEnv` (one session, from its first bar)
    with a fresh controller from ``controller_factory`` (None: no controller), exactly as
    :func:`evaluate_episodes` builds them; so a sequential evaluator such as SB3's ``evaluate_policy`` on
    this env sees the same episodes, observations and rewards.
    """

    def __init__(
        self,
        episodes: Sequence[MarketArrays],
        *,
        env_config: TradingEnvConfig,
        controller_factory: ControllerFactory | None = None,
    ) -> None:
        if not episodes:
            message = "EpisodeSequenceEnv needs at least one episode"
            raise ValueError(message)
        self._episodes = list(episodes)
        self._config = _one_session_config(env_config)
        self._factory = controller_factory
        self._cursor = -1
        self._env = _episode_env(self._episodes[0], index=0, config=self._config, controller=None)
        self.observation_space = self._env.observation_space
        self.action_space = self._env.action_space

    @property
    def episode(self) -> int:
        """Index of the current episode (-1 before the first reset)."""
        return self._cursor

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start the next episode (wrapping around after the last)."""
        super().reset(seed=seed)
        self._cursor = (self._cursor + 1) % len(self._episodes)
        controller = self._factory() if self._factory is not None else None
        self._env = _episode_env(
            self._episodes[self._cursor], index=self._cursor, config=self._config, controller=controller
        )
        return self._env.reset(seed=0, options={"start_session": 0})

    def step(self, action: int | np.int64) -> tuple[np.ndarray, Any, bool, bool, dict[str, Any]]:
        """Step the current episode's env."""
        return self._env.step(int(action))
