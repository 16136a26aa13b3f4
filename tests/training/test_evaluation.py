"""Tests for training/evaluation.py: the greedy probe that the reward controller reads once per rollout."""

import numpy as np
import pytest

from controllers.behaviour import BehaviourMeasurement
from envs.evaluation import session_markets
from envs.market_arrays import MarketArrays
from envs.trading_config import TradingEnvConfig
from tests.training.support import random_market
from training.evaluation import GreedyProbe, behaviour_of, evaluate_markets

HOLD, BUY_BOTH, SELL_BOTH = 4, 8, 0
LOOSE = {"max_consecutive_losses": 10_000, "daily_loss_limit": 0.9, "max_drawdown": 0.9}
ENV = TradingEnvConfig.model_validate({"risk": LOOSE})


class Scripted:
    """A deterministic policy: ``rule(observation)`` per row; no controller."""

    def __init__(self, rule) -> None:  # type: ignore[no-untyped-def]
        self.rule = rule
        self.calls = 0

    def predict(self, observations: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.asarray([self.rule(row) for row in observations], dtype=np.int64)

    def controller(self) -> None:
        return None


def market() -> MarketArrays:
    return random_market(8, 40, seed=5)


def test_a_policy_that_always_holds_trades_nothing_and_is_idle_every_step() -> None:
    probe = GreedyProbe(market(), env_config=ENV, sessions_per_probe=3)
    measured, regime = probe.measure(Scripted(lambda row: HOLD))
    assert measured.orders == 0
    assert measured.trades_per_day == 0.0
    assert measured.idle_rate == 1.0
    assert measured.hold_action_rate == 1.0
    assert measured.steps == 3 * 39
    sessions = session_markets(market())[:3]
    decision_bars = np.concatenate([session.regime_score[:-1] for session in sessions])
    assert regime == pytest.approx(float(np.mean(decision_bars.astype(np.float64))), rel=1e-9)


def test_buy_while_long_sends_no_order_so_it_counts_as_idle() -> None:
    probe = GreedyProbe(market(), env_config=ENV, sessions_per_probe=2)
    measured, _ = probe.measure(Scripted(lambda row: BUY_BOTH))
    # the first step buys both tickers (2 orders); every later buy finds them long: no order
    assert measured.orders == 2 * 2
    assert measured.trades_per_day == pytest.approx(2.0)
    assert measured.idle_steps == measured.steps - 2
    assert measured.hold_action_rate == 0.0


def test_a_churning_policy_trades_every_step() -> None:
    def churn(row: np.ndarray) -> int:
        return SELL_BOTH if row[-1] > 0 else BUY_BOTH  # long -> sell to flat, flat -> buy to long

    probe = GreedyProbe(market(), env_config=ENV, sessions_per_probe=2)
    measured, _ = probe.measure(Scripted(churn))
    assert measured.orders == 2 * measured.steps
    assert measured.idle_rate == 0.0
    assert measured.trades_per_day == pytest.approx(2 * 39)


def test_the_probe_walks_through_the_window_in_turn_and_batches_its_sessions() -> None:
    probe = GreedyProbe(market(), env_config=ENV, sessions_per_probe=3)
    policy = Scripted(lambda row: HOLD)
    regimes = [probe.measure(policy)[1] for _ in range(4)]
    sessions = session_markets(market())
    expected = []
    for start in (0, 3, 6, 1):  # 8 sessions: 0-2, 3-5, 6,7,0, 1-3
        chosen = [sessions[(start + offset) % 8] for offset in range(3)]
        bars = np.concatenate([session.regime_score[:-1] for session in chosen]).astype(np.float64)
        expected.append(float(np.mean(bars)))
    assert regimes == pytest.approx(expected, rel=1e-9)
    assert policy.calls == 4 * 39  # one batched prediction per bar, not one per session and bar


def test_risk_stops_count_in_the_probe_as_in_deployment() -> None:
    strict = TradingEnvConfig.model_validate({"risk": {**LOOSE, "max_consecutive_losses": 1}})

    def churn(row: np.ndarray) -> int:
        return SELL_BOTH if row[-1] > 0 else BUY_BOTH

    loose, _ = GreedyProbe(market(), env_config=ENV, sessions_per_probe=4).measure(Scripted(churn))
    stopped, _ = GreedyProbe(market(), env_config=strict, sessions_per_probe=4).measure(Scripted(churn))
    assert stopped.trades_per_day < loose.trades_per_day


def test_behaviour_of_an_evaluation_summary() -> None:
    summary, _ = evaluate_markets(
        Scripted(lambda row: BUY_BOTH), session_markets(market())[:2], env_config=ENV
    )
    assert behaviour_of(summary) == BehaviourMeasurement(
        steps=78, orders=4, idle_steps=76, hold_actions=0, decisions_per_session=39.0
    )


def test_a_probe_needs_sessions() -> None:
    with pytest.raises(ValueError, match="sessions_per_probe"):
        GreedyProbe(market(), env_config=ENV, sessions_per_probe=0)


def test_the_live_policy_acts_like_sb3_predict() -> None:
    from controllers.reward import AdaptiveRewardController
    from tests.training.support import TINY
    from training.evaluation import LivePolicy
    from training.ppo import make_training_env, new_model

    env = make_training_env(market(), config=TINY, seed=3, controller=AdaptiveRewardController())
    model = new_model(env, settings=TINY.ppo, seed=3)
    env.reset()
    observations = (
        np.random.default_rng(4).normal(size=(500, env.observation_space.shape[0])).astype(np.float32) * 3
    )
    expected, _ = model.policy.predict(env.normalize_obs(observations), deterministic=True)
    assert np.array_equal(LivePolicy(model, env).predict(observations), np.asarray(expected).reshape(-1))
