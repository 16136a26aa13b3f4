"""Tests for envs/evaluation.py: lockstep batched evaluation equals SB3's sequential evaluate_policy."""

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from envs.evaluation import COST_COMPONENTS, EpisodeRecord, EpisodeSequenceEnv, evaluate_episodes
from envs.market_arrays import MarketArrays, market_arrays
from envs.policies import BuyAndHoldPolicy, FlatPolicy
from envs.trading_config import RiskConfig, TradingEnvConfig
from market.feature_config import feature_names
from market.features import build_features
from market.synthetic import SyntheticMarketConfig, generate_market
from training.checkpoints import NORMALIZATION_FILE, LoadedPolicy, load_checkpoint
from training.cycles import run_cycles
from training.normalization import restore_normalization
from training.ppo import PPOSettings, TrainingConfig
from validation.scenarios import session_markets

TINY = TrainingConfig(
    cycles=1,
    steps_per_cycle=256,
    progress_bar=False,
    ppo=PPOSettings(n_envs=2, n_steps=64, batch_size=64),
)
TRAIN_SESSIONS = 4


@pytest.fixture(scope="module", autouse=True)
def single_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _concatenate(parts: list[MarketArrays]) -> MarketArrays:
    return MarketArrays(
        features=np.ascontiguousarray(np.concatenate([part.features for part in parts])),
        feature_names=parts[0].feature_names,
        open=np.concatenate([part.open for part in parts]),
        close=np.concatenate([part.close for part in parts]),
        volume=np.concatenate([part.volume for part in parts]),
        session_index=np.concatenate([part.session_index for part in parts]),
        timestamps=np.concatenate([part.timestamps for part in parts]),
        regime_score=np.concatenate([part.regime_score for part in parts]),
        symbols=parts[0].symbols,
    )


@pytest.fixture(scope="module")
def sessions() -> list[MarketArrays]:
    """Nine short sessions: one-minute synthetic bars sampled every 10 minutes (39 bars a session)."""
    bars = generate_market(SyntheticMarketConfig(sessions=10), seed=4).bars
    bars = bars.filter(pl.col("ts").dt.minute() % 10 == 0)
    market = market_arrays(bars, build_features(bars), feature_columns=feature_names())
    scores = np.linspace(-0.5, 0.5, market.bars)  # a moving regime score exercises the controller
    return [part for _, part in session_markets(market.with_regime_score(scores))]


@pytest.fixture(scope="module")
def policy(sessions: list[MarketArrays], tmp_path_factory: pytest.TempPathFactory) -> LoadedPolicy:
    train = _concatenate(sessions[:TRAIN_SESSIONS])
    validation = _concatenate(sessions[TRAIN_SESSIONS:])
    output = tmp_path_factory.mktemp("checkpoints")
    outcome = run_cycles(train=train, selection=validation, config=TINY, seed=3, output_dir=output)
    return load_checkpoint(outcome.best_checkpoint, market=validation)


def _sb3(policy: LoadedPolicy, episodes: list[MarketArrays]) -> tuple[list[float], list[int]]:
    walker = EpisodeSequenceEnv(episodes, env_config=policy.config.env, controller_factory=policy.controller)
    environment = VecNormalize(
        DummyVecEnv([lambda: walker]), training=False, norm_obs=True, norm_reward=False
    )
    restore_normalization(environment, Path(policy.directory) / NORMALIZATION_FILE)
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
    return list(rewards), list(lengths)  # type: ignore[arg-type]


def _float32_step_sum(record: EpisodeRecord) -> float:
    return float(np.cumsum(record.rewards.astype(np.float32).astype(np.float64))[-1])


def test_batched_evaluation_equals_sb3_evaluate_policy(
    policy: LoadedPolicy, sessions: list[MarketArrays]
) -> None:
    episodes = sessions[TRAIN_SESSIONS:]
    records = evaluate_episodes(policy, episodes, env_config=policy.config.env)
    rewards, lengths = _sb3(policy, episodes)
    assert [record.length for record in records] == lengths
    # SB3's DummyVecEnv stores each step's reward as float32 and evaluate_policy adds them in float64.
    assert [_float32_step_sum(record) for record in records] == rewards
    assert [record.reward for record in records] == pytest.approx(rewards, abs=1e-5)
    assert sum(record.agent_orders for record in records) > 0  # the policy trades: costs are exercised


def test_records_are_consistent_with_the_env(policy: LoadedPolicy, sessions: list[MarketArrays]) -> None:
    episodes = sessions[TRAIN_SESSIONS:]
    capital = policy.config.env.initial_capital
    records = evaluate_episodes(policy, episodes, env_config=policy.config.env)
    for record, market in zip(records, episodes, strict=True):
        length = record.length
        assert length == market.bars - 1 and not record.terminated_early
        assert record.equity.shape == (length + 1,) and record.equity[0] == capital
        assert record.positions.shape == record.shares.shape == (length + 1, 2)
        assert record.actions.shape == record.rewards.shape == record.orders.shape == (length,)
        np.testing.assert_array_equal(record.positions[-1], [0.0, 0.0])  # flattened at the close
        np.testing.assert_array_equal(record.close, market.close)
        assert record.costs["total"] == pytest.approx(sum(record.costs[name] for name in COST_COMPONENTS[:3]))
        assert record.bar_minutes == 10
        assert record.reward == pytest.approx(float(np.sum(record.rewards)))
        assert int(record.orders.sum()) == record.agent_orders + record.flatten_orders


def test_rewards_without_a_controller_are_the_pnl_term(sessions: list[MarketArrays]) -> None:
    config = TradingEnvConfig()
    records = evaluate_episodes(BuyAndHoldPolicy(), sessions[:3], env_config=config)
    for record in records:
        pnl = config.reward_scale * np.diff(record.equity) / config.initial_capital
        np.testing.assert_allclose(record.rewards, pnl, rtol=0, atol=1e-12)
        assert record.agent_orders == 2
        assert record.actions[0] == 8 and np.all(record.actions[2:] == 4)


def test_the_checkpoint_controller_state_is_the_default(
    policy: LoadedPolicy, sessions: list[MarketArrays]
) -> None:
    episodes = sessions[TRAIN_SESSIONS:]
    default = evaluate_episodes(policy, episodes, env_config=policy.config.env)
    explicit = evaluate_episodes(
        policy,
        episodes,
        env_config=policy.config.env,
        controller_state=policy.controller_state,
        controller_config=policy.config.controller,
    )
    for first, second in zip(default, explicit, strict=True):
        np.testing.assert_array_equal(first.rewards, second.rewards)
    # The shaping moves rewards, never equity.
    shaped = default[0]
    unshaped = evaluate_episodes(_Without(policy), episodes[:1], env_config=policy.config.env)[0]
    np.testing.assert_array_equal(shaped.equity, unshaped.equity)
    assert not np.array_equal(shaped.rewards, unshaped.rewards)


class _Without:
    """The policy's predictions without its controller."""

    def __init__(self, policy: LoadedPolicy) -> None:
        self._policy = policy

    def predict(self, observations: np.ndarray) -> np.ndarray:
        return self._policy.predict(observations)


def test_results_do_not_depend_on_the_order_of_episodes(
    policy: LoadedPolicy, sessions: list[MarketArrays]
) -> None:
    forward = evaluate_episodes(policy, sessions, env_config=policy.config.env)
    backward = evaluate_episodes(policy, sessions[::-1], env_config=policy.config.env)
    for first, second in zip(forward, backward[::-1], strict=True):
        np.testing.assert_array_equal(first.equity, second.equity)
        np.testing.assert_array_equal(first.actions, second.actions)
        np.testing.assert_array_equal(first.rewards, second.rewards)


def test_a_drawdown_stop_ends_the_episode_early(sessions: list[MarketArrays]) -> None:
    tight = TradingEnvConfig(risk=RiskConfig(max_drawdown=0.0001))
    records = evaluate_episodes(BuyAndHoldPolicy(), sessions, env_config=tight)
    stopped = [record for record in records if record.terminated_early]
    assert stopped, "a 0.01% drawdown limit stops some buy-and-hold session"
    for record in stopped:
        assert record.equity.shape == (record.length + 1,) == (record.close.shape[0],)  # cut to the episode
        assert record.equity[-1] < record.equity.max() * (1 - 0.0001)  # below the peak by the limit
        np.testing.assert_array_equal(record.positions[-1], [0.0, 0.0])
    market = sessions[records.index(stopped[0])]
    assert stopped[0].length < market.bars - 1


def test_flat_policy_never_trades(sessions: list[MarketArrays]) -> None:
    records = evaluate_episodes(FlatPolicy(), sessions, env_config=TradingEnvConfig())
    for record in records:
        assert record.agent_orders == 0 and record.flatten_orders == 0
        assert record.costs == {name: 0.0 for name in COST_COMPONENTS}
        np.testing.assert_array_equal(record.equity, np.full(record.length + 1, 100_000.0))


def test_bad_inputs_are_refused(sessions: list[MarketArrays]) -> None:
    assert evaluate_episodes(FlatPolicy(), [], env_config=TradingEnvConfig()) == []
    with pytest.raises(ValueError, match="holds 2 sessions"):
        evaluate_episodes(FlatPolicy(), [_concatenate(sessions[:2])], env_config=TradingEnvConfig())
    with pytest.raises(ValueError, match="2 labels for 1 episodes"):
        evaluate_episodes(FlatPolicy(), sessions[:1], env_config=TradingEnvConfig(), sessions=["a", "b"])

    class _Short:
        def predict(self, observations: np.ndarray) -> np.ndarray:
            return np.zeros(1, dtype=np.int64)

    with pytest.raises(ValueError, match=r"returned shape \(1,\) for 3 observations"):
        evaluate_episodes(_Short(), sessions[:3], env_config=TradingEnvConfig())


def test_labels_and_sequence_env_walk_the_episodes_in_order(sessions: list[MarketArrays]) -> None:
    config = TradingEnvConfig()
    records = evaluate_episodes(FlatPolicy(), sessions[:2], env_config=config, sessions=["x", "y"])
    assert [record.session for record in records] == ["x", "y"]
    walker = EpisodeSequenceEnv(sessions[:2], env_config=TradingEnvConfig())
    for expected in (0, 1, 0):
        observation, _ = walker.reset()
        assert walker.episode == expected
        np.testing.assert_array_equal(observation[:-2], sessions[expected].features[0])
