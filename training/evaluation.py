"""The training side's evaluation: the greedy policy's summary on whole sessions, and the probe that measures
the greedy policy's trading for the reward controller once per rollout. Both run the one evaluation loop,
:func:`envs.evaluation.evaluate_episodes`.

:func:`evaluate_sessions` scores cycles on the selection window (:mod:`training.cycles`); the same loop, on a
few training sessions per rollout, is :class:`GreedyProbe`, the reward controller's measurement of what the
deployed (argmax) policy does, with the env's real rules: costs, partial fills and risk stops.
"""

import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.torch_layers import FlattenExtractor
from stable_baselines3.common.vec_env import VecNormalize

from controllers.behaviour import BehaviourMeasurement
from controllers.reward import AdaptiveRewardController
from core.spec import HOLD_ACTION
from envs.evaluation import evaluate_episodes, session_markets
from envs.market_arrays import MarketArrays
from envs.trading_config import TradingEnvConfig

__all__ = [
    "GreedyProbe",
    "LivePolicy",
    "Policy",
    "behaviour_of",
    "evaluate_markets",
    "evaluate_policy",
    "evaluate_sessions",
]


class Policy(Protocol):
    """What the evaluation loop needs: batched deterministic actions and the reward controller to shape with."""

    def predict(self, observations: np.ndarray) -> np.ndarray: ...

    def controller(self) -> AdaptiveRewardController | None: ...


class _EnvSettings(Protocol):
    @property
    def env(self) -> TradingEnvConfig: ...


def evaluate_policy(
    policy: Policy, market: MarketArrays, *, config: _EnvSettings, sessions: int | None = None
) -> dict[str, float]:
    """The summary of :func:`evaluate_sessions` (see there)."""
    summary, _ = evaluate_sessions(policy, market, config=config, sessions=sessions)
    return summary


def evaluate_sessions(
    policy: Policy, market: MarketArrays, *, config: _EnvSettings, sessions: int | None = None
) -> tuple[dict[str, float], np.ndarray]:
    """Deterministic evaluation: one episode from the start of each of the first ``sessions`` sessions.

    ``sessions`` None evaluates every usable session of ``market``; more than it has evaluates all of them
    (the count is reported). Each session is a one-session episode with ``config.env`` (risk limits and
    costs as in training) and its own controller restored from the checkpoint's state, and all sessions
    step in lockstep with batched predictions, so the result does not depend on their order. Returns:
    ``sessions``, ``steps``, ``mean_reward`` (raw episode reward incl. shaping), ``mean_return_pct`` (mean
    session return, percent), ``total_return_pct`` (the session returns compounded), ``hold_rate`` (share of
    hold-both actions), ``idle_rate`` (share of steps on which no agent order filled), ``trades_per_day``
    (agent orders per session), ``regime_score_mean`` (mean regime score of the decision bars),
    ``cost_total_mean`` (dollars per session) and ``score`` (= ``mean_return_pct``, the early-stop and best-cycle criterion); and, second,
    each session's return (a fraction, float64) in time order.
    """
    markets = session_markets(market)
    if not markets:
        msg = "the evaluation market has no session with at least two bars"
        raise ValueError(msg)
    if sessions is not None:
        if sessions < 1:
            msg = f"sessions must be >= 1, got {sessions}"
            raise ValueError(msg)
        markets = markets[:sessions]
    return evaluate_markets(policy, markets, env_config=config.env)


def evaluate_markets(
    policy: Policy, markets: Sequence[MarketArrays], *, env_config: TradingEnvConfig
) -> tuple[dict[str, float], np.ndarray]:
    """:func:`evaluate_sessions` on given one-session markets (see there for the figures)."""
    records = evaluate_episodes(policy, markets, env_config=env_config)
    count = len(records)
    steps = sum(record.length for record in records)
    returns = np.asarray([record.total_return for record in records], dtype=np.float64)
    # The regime score of each decision bar: the bar the step's action was decided on.
    regime = math.fsum(
        value
        for market, record in zip(markets, records, strict=True)
        for value in market.regime_score[: record.length].tolist()  # type: ignore[index]
    )
    mean_return_pct = 100.0 * float(np.mean(returns))
    summary = {
        "sessions": float(count),
        "steps": float(steps),
        "mean_reward": float(np.mean([record.reward for record in records])),
        "mean_return_pct": mean_return_pct,
        "total_return_pct": 100.0 * (float(np.prod(1.0 + returns)) - 1.0),
        "hold_rate": sum(int(np.count_nonzero(record.actions == HOLD_ACTION)) for record in records) / steps,
        "idle_rate": sum(record.idle_steps for record in records) / steps,
        "trades_per_day": sum(record.agent_orders for record in records) / count,
        "regime_score_mean": regime / steps,
        "cost_total_mean": float(np.mean([record.costs["total"] for record in records])),
        "score": mean_return_pct,
    }
    return summary, returns


def behaviour_of(summary: dict[str, float]) -> BehaviourMeasurement:
    """The trading behaviour in an evaluation summary (orders, idle steps, holds per decision step)."""
    steps = int(summary["steps"])
    return BehaviourMeasurement(
        steps=steps,
        orders=round(summary["trades_per_day"] * summary["sessions"]),
        idle_steps=round(summary["idle_rate"] * steps),
        hold_actions=round(summary["hold_rate"] * steps),
        decisions_per_session=steps / summary["sessions"],
    )


_ACTIVATIONS: dict[type, Any] = {torch.nn.Tanh: np.tanh, torch.nn.ReLU: lambda x: np.maximum(x, 0.0)}


def _numpy_actor(model: PPO) -> list[tuple[np.ndarray, np.ndarray] | Any] | None:
    """The actor as numpy layers ``[(weight.T, bias) | activation, ...]``, or None for another architecture."""
    policy = model.policy
    if not isinstance(policy.pi_features_extractor, FlattenExtractor):
        return None
    layers: list[tuple[np.ndarray, np.ndarray] | Any] = []
    for module in [*policy.mlp_extractor.policy_net, policy.action_net]:
        if isinstance(module, torch.nn.Linear):
            weight = module.weight.detach().numpy().astype(np.float64).T.copy()
            layers.append((weight, module.bias.detach().numpy().astype(np.float64)))
        elif type(module) in _ACTIVATIONS:
            layers.append(_ACTIVATIONS[type(module)])
        else:
            return None
    return layers


class LivePolicy:
    """The policy being trained, acting greedily on raw observations through its live normalization.

    The argmax of the actor's logits: for SB3's MLP policies (Linear layers with Tanh or ReLU, flat
    observations) computed in numpy from a snapshot of the weights taken at construction, a tenth of the cost
    of a torch call per step at these batch sizes; other architectures go through torch. Build a new one
    after every update (the probe does, once per rollout).
    """

    def __init__(self, model: PPO, normalization: VecNormalize) -> None:
        self.model = model
        self.normalization = normalization
        self._layers = _numpy_actor(model)

    def predict(self, observations: np.ndarray) -> np.ndarray:
        """Deterministic actions (int64, shape ``(n,)``) for raw observations; the statistics are not updated."""
        normalized = self.normalization.normalize_obs(np.asarray(observations, dtype=np.float32))
        if self._layers is None:
            policy = self.model.policy
            with torch.no_grad():
                features = policy.extract_features(torch.as_tensor(normalized), policy.pi_features_extractor)
                logits = policy.action_net(policy.mlp_extractor.forward_actor(features))
            return logits.argmax(dim=1).numpy().astype(np.int64)
        values = np.asarray(normalized, dtype=np.float64)
        for layer in self._layers:
            if isinstance(layer, tuple):
                values = values @ layer[0] + layer[1]
            else:
                values = layer(values)
        return values.argmax(axis=1).astype(np.int64)

    def controller(self) -> None:
        """No shaping: the probe measures behaviour, not reward."""


class GreedyProbe:
    """The greedy policy on ``sessions_per_probe`` training sessions per call, in turn through the window.

    Each call evaluates the next sessions of ``market`` (wrapping around) with :func:`evaluate_markets`: the
    env's real costs, partial fills and risk stops, no reward shaping. Deterministic: the order of the
    sessions is fixed, and the greedy policy draws no random numbers.
    """

    def __init__(
        self, market: MarketArrays, *, env_config: TradingEnvConfig, sessions_per_probe: int
    ) -> None:
        if sessions_per_probe < 1:
            msg = f"sessions_per_probe must be >= 1, got {sessions_per_probe}"
            raise ValueError(msg)
        self._markets = session_markets(market)
        if not self._markets:
            msg = "the training market has no session with at least two bars"
            raise ValueError(msg)
        self._env_config = env_config
        self._count = min(sessions_per_probe, len(self._markets))
        self._next = 0

    def measure(self, policy: Policy) -> tuple[BehaviourMeasurement, float]:
        """The greedy behaviour on the next sessions and the mean regime score of their decision bars."""
        total = len(self._markets)
        chosen = [self._markets[(self._next + offset) % total] for offset in range(self._count)]
        self._next = (self._next + self._count) % total
        summary, _ = evaluate_markets(policy, chosen, env_config=self._env_config)
        return behaviour_of(summary), summary["regime_score_mean"]
