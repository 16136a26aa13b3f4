"""Tests for envs/trading.py: conformance, determinism, no look-ahead, fills, costs and reward shaping."""

import math
import warnings
from datetime import UTC, datetime, timedelta

import gymnasium
import numpy as np
import polars as pl
import pytest
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from controllers.reward import AdaptiveRewardController
from envs.execution import ExecutionConfig, order_cost
from envs.market_arrays import MarketArrays, market_arrays
from envs.trading import ACTION_MEANINGS, DualTickerTradingEnv, decode_action
from envs.trading_config import TradingEnvConfig
from tests.envs.support import (
    BUY_0,
    BUY_1,
    BUY_BOTH,
    FREE,
    HOLD,
    SELL_0,
    SELL_1,
    START,
    config,
    flat_market,
    make_market,
    run,
)

ENV_ID = "stairways-test/DualTickerTrading-v0"


def random_market(sessions: int, bars_per_session: int, *, seed: int, features: int = 12) -> MarketArrays:
    rng = np.random.default_rng(seed)
    bars = sessions * bars_per_session
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, (bars, 2)), axis=0))
    open_ = close * np.exp(rng.normal(0.0, 5e-4, (bars, 2)))
    names = tuple(f"{symbol}:feature_{index}" for symbol in ("A", "B") for index in range(features))
    return MarketArrays(
        features=rng.normal(size=(bars, 2 * features)).astype(np.float32),
        feature_names=names,
        open=open_,
        close=close,
        volume=rng.uniform(1e3, 1e5, (bars, 2)),
        session_index=np.repeat(np.arange(sessions, dtype=np.int64), bars_per_session),
        timestamps=START + np.arange(bars) * np.timedelta64(60, "s"),
        regime_score=rng.uniform(-1.0, 1.0, bars).astype(np.float32),
        symbols=("A", "B"),
    )


# ------------------------------------------------------------------------------------------------------------
# Conformance and determinism


def test_actions_decode_to_per_ticker_steps() -> None:
    assert ACTION_MEANINGS[BUY_0] == "buy/hold" and ACTION_MEANINGS[SELL_1] == "hold/sell"
    assert (
        decode_action(0) == (-1, -1) and decode_action(HOLD) == (0, 0) and decode_action(BUY_BOTH) == (1, 1)
    )
    for bad in (-1, 9, 2.5, "4", None):
        with pytest.raises(ValueError, match="integer in \\[0, 8\\]"):
            decode_action(bad)  # type: ignore[arg-type]


def test_gymnasium_check_env_passes_without_warnings() -> None:
    # Without a controller: its state persists across episodes by design, so with one the same seed gives
    # the same rollout only from a fresh env and controller (test_same_seed_rollouts_are_identical), not
    # after an earlier episode, which Gymnasium's step-determinism check demands.
    # Made through the registry so that the env has a spec: the checker then checks every declared render
    # mode (there are none) instead of warning that it cannot.
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(ENV_ID, entry_point="envs.trading:DualTickerTradingEnv")
    env = gymnasium.make(ENV_ID, market=random_market(4, 30, seed=1), disable_env_checker=True).unwrapped
    assert isinstance(env, DualTickerTradingEnv) and env.spec is not None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gymnasium_check_env(env)
    assert [str(warning.message) for warning in caught] == []


def test_sb3_check_env_passes_without_warnings() -> None:
    env = DualTickerTradingEnv(random_market(4, 30, seed=2), controller=AdaptiveRewardController())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_check_env(env, warn=True)
    assert [str(warning.message) for warning in caught] == []


def test_default_observation_is_26_dimensional_and_follows_the_arrays() -> None:
    env = DualTickerTradingEnv(random_market(2, 10, seed=3))
    assert env.observation_space.shape == (26,) and env.observation_space.dtype == np.float32
    assert env.action_space == gymnasium.spaces.Discrete(9)
    narrow = DualTickerTradingEnv(random_market(2, 10, seed=3, features=3))
    assert narrow.observation_space.shape == (8,)


def test_same_seed_rollouts_are_identical() -> None:
    market = random_market(6, 40, seed=4)

    def rollout() -> list[tuple]:
        env = DualTickerTradingEnv(
            market, config=TradingEnvConfig(sessions_per_episode=2), controller=AdaptiveRewardController()
        )
        actions = np.random.default_rng(9).integers(0, 9, 1_500)
        observation, info = env.reset(seed=123)
        trace: list[tuple] = [(observation.copy(), info)]
        for action in actions:
            observation, reward, terminated, truncated, info = env.step(int(action))
            trace.append((observation.copy(), reward, terminated, truncated, info))
            if terminated or truncated:
                observation, info = env.reset()
                trace.append((observation.copy(), info))
        return trace

    first, second = rollout(), rollout()
    assert len(first) == len(second)
    for left, right in zip(first, second, strict=True):
        assert len(left) == len(right)
        for a, b in zip(left, right, strict=True):
            if isinstance(a, np.ndarray):
                np.testing.assert_array_equal(a, b)
            else:
                assert a == b
    assert sum(1 for entry in first if len(entry) == 2) > 3  # several episodes were covered


def test_episode_start_is_drawn_with_the_seed() -> None:
    market = flat_market(30, sessions=np.repeat(np.arange(10), 3).tolist())
    env = DualTickerTradingEnv(market, config=config(sessions_per_episode=2))
    starts = set(env.session_starts)
    assert env.session_starts == list(range(0, 30, 3))

    def first_bars(seed: int) -> list[int]:
        bars = [env.reset(seed=seed)[1]["bar"]]
        bars += [env.reset()[1]["bar"] for _ in range(5)]
        return bars

    assert first_bars(5) == first_bars(5)
    drawn = {env.reset(seed=seed)[1]["bar"] for seed in range(60)}
    assert drawn <= starts - {27}  # the last session cannot start a two-session episode
    assert len(drawn) >= 6
    assert env.reset(options={"start_session": 3})[1]["bar"] == 9
    with pytest.raises(ValueError, match="start_session"):
        env.reset(options={"start_session": 9})


def test_step_needs_a_running_episode_and_a_valid_action() -> None:
    env = DualTickerTradingEnv(flat_market(5), config=config())
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(HOLD)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="integer in \\[0, 8\\], got 9"):
        env.step(9)
    with pytest.raises(ValueError, match="got -1"):
        env.step(-1)
    env.step(np.int64(HOLD))  # numpy integers (as SB3 passes them) are accepted


# ------------------------------------------------------------------------------------------------------------
# Timing: no look-ahead, fills at t + latency


def _frames(bars_per_session: int, sessions: int, *, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    rows = []
    for day in range(sessions):
        session_open = datetime(2024, 3, 4 + day, 14, 30, tzinfo=UTC)
        for minute in range(bars_per_session):
            for symbol in ("MSFT", "NVDA"):
                price = float(rng.uniform(90.0, 110.0))
                rows.append(
                    {
                        "ts": session_open + timedelta(minutes=minute),
                        "symbol": symbol,
                        "open": price,
                        "high": price + 1.0,
                        "low": price - 1.0,
                        "close": price + float(rng.normal()),
                        "volume": float(rng.uniform(50.0, 500.0)),
                    }
                )
    bars = pl.DataFrame(rows).with_columns(pl.col("ts").dt.cast_time_unit("ns")).sort("symbol", "ts")
    features = bars.select(
        "ts",
        "symbol",
        (pl.col("close") / pl.col("open") - 1.0).alias("ret"),
        (pl.col("volume").log()).alias("log_volume"),
    )
    return bars, features


@settings(max_examples=25, deadline=None)
@given(cut=st.integers(0, 23), factor=st.floats(0.2, 5.0), seed=st.integers(0, 3))
def test_changing_bars_after_t_cannot_change_the_observation_at_t(cut: int, factor: float, seed: int) -> None:
    bars, features = _frames(8, 3, seed=seed)
    timestamps = bars.get_column("ts").unique().sort()
    cut_ts = timestamps[cut]
    later = pl.col("ts") > cut_ts
    perturbed_bars = bars.with_columns(
        [
            pl.when(later).then(pl.col(name) * factor).otherwise(pl.col(name)).alias(name)
            for name in ("open", "close", "volume")
        ]
    )
    perturbed_features = features.with_columns(
        [
            pl.when(later).then(pl.col(name) + factor).otherwise(pl.col(name)).alias(name)
            for name in ("ret", "log_volume")
        ]
    )
    env_config = TradingEnvConfig(
        sessions_per_episode=3,
        notional_per_unit=20_000.0,
        execution=ExecutionConfig(participation_cap=0.2, latency_bars=1 + seed % 2),
    )
    actions = np.random.default_rng(seed).integers(0, 9, 40).tolist()

    def observations(
        bar_frame: pl.DataFrame, feature_frame: pl.DataFrame
    ) -> list[tuple[int, np.ndarray, float]]:
        market = market_arrays(bar_frame, feature_frame, feature_columns=["ret", "log_volume"])
        env = DualTickerTradingEnv(market, config=env_config, controller=AdaptiveRewardController())
        observation, info = env.reset(options={"start_session": 0})
        seen = [(info["bar"], observation.copy(), 0.0)]
        for action in actions:
            observation, reward, terminated, truncated, _ = env.step(action)
            if terminated or truncated or env.bar is None or env.bar > cut:
                break
            seen.append((env.bar, observation.copy(), float(reward)))
        return seen

    original = observations(bars, features)
    changed = observations(perturbed_bars, perturbed_features)
    assert [bar for bar, _, _ in original] == [bar for bar, _, _ in changed]
    assert original[-1][0] <= cut
    for (_, left, left_reward), (_, right, right_reward) in zip(original, changed, strict=True):
        np.testing.assert_array_equal(left, right)
        assert left_reward == right_reward


@pytest.mark.parametrize("ticker", [0, 1])
def test_an_order_fills_at_the_next_open_and_is_marked_at_the_close(ticker: int) -> None:
    opens, closes, flat = [100, 100, 104, 110, 120], [100, 102, 106, 108, 121], [100] * 5
    if ticker == 0:
        market = make_market(opens, closes, open_1=flat, close_1=flat, sessions=[0] * 5)
    else:
        market = make_market(flat, flat, open_1=opens, close_1=closes, sessions=[0] * 5)
    env = DualTickerTradingEnv(market, config=config())
    buy, sell = (BUY_0, SELL_0) if ticker == 0 else (BUY_1, SELL_1)
    steps = run(env, [buy, HOLD, sell, HOLD])
    # Bought 10 shares at bar 1's open (100): +2 per share to bar 1's close, +4 to bar 2's close.
    assert [step[1] for step in steps[:3]] == pytest.approx([0.02, 0.04, 0.04])
    # Sold at bar 3's open (110): +4 per share from bar 2's close; bar 4 moves nothing while flat.
    assert steps[3][1] == 0.0
    assert [step[4]["equity"] for step in steps] == pytest.approx(
        [100_020.0, 100_060.0, 100_100.0, 100_100.0]
    )
    position = 2 + ticker  # the positions follow the two features in the observation
    assert [step[0][position] for step in steps] == [1.0, 1.0, 0.0, 0.0]
    assert [step[0][0] for step in steps] == [1.0, 2.0, 3.0, 4.0]  # the observation is the new decision bar
    assert [step[3] for step in steps] == [False, False, False, True]


def test_latency_delays_the_fill_and_orders_due_after_the_session_are_cancelled() -> None:
    market = make_market([100, 100, 104, 110, 120], [100, 102, 106, 108, 121], sessions=[0] * 5)
    env = DualTickerTradingEnv(market, config=config(execution=FREE.model_copy(update={"latency_bars": 2})))
    steps = run(env, [BUY_0, HOLD, HOLD, BUY_1])
    shares = 1_000.0 / 104.0  # filled at bar 2's open
    assert steps[0][1] == 0.0 and steps[0][0][2] == 0.0
    assert steps[1][1] == pytest.approx(100.0 * shares * (106 - 104) / 100_000.0)
    assert steps[1][0][2] == 1.0
    assert steps[2][4]["equity"] == pytest.approx(100_000.0 + shares * (108 - 104))
    # The position is flattened at bar 4's close; ticker 1's order (due at bar 5) never fills.
    assert steps[3][4]["equity"] == pytest.approx(100_000.0 + shares * (121 - 104))
    assert steps[3][4]["agent_orders"] == 1 and steps[3][4]["flatten_orders"] == 1
    assert env.shares == (0.0, 0.0)


def test_the_position_ladder_moves_one_level_per_buy_or_sell() -> None:
    env = DualTickerTradingEnv(flat_market(9), config=config())
    steps = run(env, [SELL_0, SELL_0, BUY_0, BUY_0, BUY_0, BUY_BOTH, SELL_1, SELL_1])
    assert [(step[0][2], step[0][3]) for step in steps] == [
        (-1.0, 0.0),
        (-1.0, 0.0),
        (0.0, 0.0),
        (1.0, 0.0),
        (1.0, 0.0),
        (1.0, 1.0),
        (1.0, 0.0),
        (0.0, 0.0),
    ]
    # Selling at -1 and buying at +1 send nothing: 6 orders for 8 non-hold actions. The last step ends the
    # session: the positions reached (+1, -1) at the open and were flattened at the close.
    assert steps[-1][4]["agent_orders"] == 6 and steps[-1][4]["flatten_orders"] == 2


def test_a_unit_is_capped_by_the_share_of_equity() -> None:
    env = DualTickerTradingEnv(
        flat_market(3), config=config(notional_per_unit=50_000.0, max_position_share=0.1)
    )
    run(env, [BUY_0])
    assert env.shares == (pytest.approx(10_000.0 / 100.0), 0.0)


# ------------------------------------------------------------------------------------------------------------
# Costs


@pytest.mark.parametrize("ticker", [0, 1])
def test_each_cost_component_matches_the_execution_model(ticker: int) -> None:
    execution = ExecutionConfig(
        ticket_cost=0.5, spread_bps=1.0, fee_bps=0.5, impact_coefficient=0.01, participation_cap=1.0
    )
    market = make_market(
        [100.0] * 4, [100.0] * 4, open_1=[100.0] * 4, close_1=[100.0] * 4, sessions=[0] * 4, volume=1_000.0
    )
    env = DualTickerTradingEnv(market, config=config(execution=execution))
    steps = run(env, [BUY_0 if ticker == 0 else BUY_1, HOLD, HOLD])
    opening = order_cost(10.0, 100.0, 1_000.0, config=execution)
    closing = order_cost(-10.0, 100.0, 1_000.0, config=execution)
    assert opening == (0.5, pytest.approx(0.15), pytest.approx(0.01 * math.sqrt(0.01) * 1_000.0))
    assert steps[0][1] == pytest.approx(-100.0 * sum(opening) / 100_000.0)
    assert steps[1][1] == 0.0
    assert steps[2][1] == pytest.approx(-100.0 * sum(closing) / 100_000.0)  # flattened at the session close
    breakdown = env.cost_breakdown()
    assert breakdown["ticket"] == pytest.approx(opening[0] + closing[0])
    assert breakdown["spread_fee"] == pytest.approx(opening[1] + closing[1])
    assert breakdown["impact"] == pytest.approx(opening[2] + closing[2])
    assert breakdown["total"] == pytest.approx(sum(opening) + sum(closing))
    final = steps[-1][4]
    assert (final["cost_ticket"], final["cost_spread_fee"], final["cost_impact"]) == (
        breakdown["ticket"],
        breakdown["spread_fee"],
        breakdown["impact"],
    )
    assert final["equity"] == pytest.approx(100_000.0 - breakdown["total"])


def test_partial_fills_under_the_participation_cap_are_cancelled_beyond_the_cap() -> None:
    execution = FREE.model_copy(update={"participation_cap": 0.1})
    market = make_market([100.0] * 6, [100.0] * 6, sessions=[0] * 6, volume=[[50.0, 1e9]] * 6)
    env = DualTickerTradingEnv(market, config=config(execution=execution))
    steps = run(env, [BUY_0, HOLD, BUY_0, SELL_0, HOLD])
    assert steps[0][0][2] == 0.5  # 5 of 10 shares filled, the rest cancelled
    assert steps[1][0][2] == 0.5  # nothing carried over
    assert steps[2][0][2] == 1.0  # topped up by the missing half unit
    assert steps[3][0][2] == 0.5  # selling 10 shares, 5 fill
    final = steps[-1][4]
    assert final["partial_fills"] == 2 and final["agent_orders"] == 3 and final["flatten_orders"] == 1


def test_a_zero_volume_bar_fills_nothing_and_costs_nothing() -> None:
    execution = ExecutionConfig(participation_cap=0.5)
    market = make_market(
        [100.0] * 3, [100.0] * 3, sessions=[0] * 3, volume=[[1e6, 1e6], [0.0, 1e6], [1e6, 1e6]]
    )
    env = DualTickerTradingEnv(market, config=config(execution=execution))
    steps = run(env, [BUY_0, HOLD])
    assert steps[0][0][2] == 0.0 and steps[0][1] == 0.0
    assert env.cost_breakdown()["total"] == 0.0


# ------------------------------------------------------------------------------------------------------------
# Reward shaping by the controller


def test_controller_shaping_pays_the_hold_bonus_on_idle_steps_and_charges_ticket_cost_per_order() -> None:
    market = make_market([100.0] * 12, [100.0] * 12, sessions=[0] * 12)
    controller = AdaptiveRewardController()
    controller.hold_bonus, controller.ticket_cost = 0.03, 0.7
    env = DualTickerTradingEnv(market, config=config(ticket_shaping_scale=0.02), controller=controller)
    # buy both, hold, buy both again while long (no order: idle), sell 0, buy 0, sell/sell, hold
    actions = [BUY_BOTH, HOLD, BUY_BOTH, SELL_0, BUY_0, 0, HOLD]
    orders = [2, 0, 0, 1, 1, 2, 0]
    steps = run(env, actions)
    for bar, (count, step) in enumerate(zip(orders, steps, strict=True)):
        expected = 0.03 if count == 0 else -0.7 * 0.02 * count
        assert step[1] == pytest.approx(expected, abs=1e-12), bar
    # the env only reads the controller: nothing in it moved
    assert (controller.hold_bonus, controller.ticket_cost, controller.rollouts) == (0.03, 0.7, 0)


def test_without_a_controller_the_reward_is_the_scaled_pnl() -> None:
    market = make_market([100, 100, 101], [100, 100.5, 99], sessions=[0] * 3)
    env = DualTickerTradingEnv(market, config=config(reward_scale=1.0))
    steps = run(env, [HOLD, BUY_0])
    assert [step[1] for step in steps] == pytest.approx([0.0, 1_000.0 / 101.0 * (99 - 101) / 100_000.0])


class _BrokenController:
    hold_bonus = float("nan")
    ticket_cost = 0.5


def test_a_non_finite_reward_raises_naming_the_bar() -> None:
    env = DualTickerTradingEnv(flat_market(4), config=config(), controller=_BrokenController())  # type: ignore[arg-type]
    env.reset(seed=0)
    env.step(BUY_0)
    with pytest.raises(FloatingPointError, match=r"reward is not finite at bar 2 \(2024-01-02T14:32"):
        env.step(HOLD)


def test_a_non_finite_feature_raises_at_construction_naming_bar_and_feature() -> None:
    market = flat_market(6)
    features = market.features.copy()
    features[3, 1] = np.nan
    broken = MarketArrays(**{**market.__dict__, "features": features})
    with pytest.raises(ValueError, match=r"feature 'B:index' is not finite at bar 3 \(2024-01-02T14:33:00"):
        DualTickerTradingEnv(broken, config=config())
