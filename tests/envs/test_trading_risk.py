"""Tests for envs/trading.py's risk limits (daily loss, loss streak, drawdown) and episode truncation."""

import pytest

from envs.trading import DualTickerTradingEnv
from envs.trading_config import RiskConfig
from tests.envs.support import (
    BUY_0,
    BUY_1,
    BUY_BOTH,
    FREE,
    HOLD,
    SELL_0,
    SELL_1,
    config,
    flat_market,
    make_market,
    run,
)

# ------------------------------------------------------------------------------------------------------------
# Risk limits


def test_daily_loss_limit_flattens_and_blocks_trading_until_the_next_session() -> None:
    prices = [100.0, 100.0, 95.0, 96.0, 97.0, 98.0, 98.0, 99.0, 100.0, 101.0, 102.0, 103.0]
    market = make_market(prices, prices, sessions=[0] * 6 + [1] * 6)
    risk = RiskConfig(daily_loss_limit=0.02, max_consecutive_losses=100, max_drawdown=0.5)
    env = DualTickerTradingEnv(
        market, config=config(notional_per_unit=50_000.0, sessions_per_episode=2, risk=risk)
    )
    steps = run(env, [BUY_0, HOLD, BUY_0, BUY_BOTH, BUY_0, BUY_0, BUY_0, BUY_0, BUY_0, BUY_0])
    # Long 500 shares from 100; bar 2 closes at 95: -2,500 < -2% of 100,000, flattened at that close.
    assert steps[1][4]["equity"] == pytest.approx(97_500.0)
    assert steps[1][0][2] == 0.0
    # Orders for the rest of the session are ignored: flat, no costs, equity unchanged.
    for step in steps[2:5]:
        assert (step[0][2], step[0][3]) == (0.0, 0.0)
        assert step[4]["equity"] == pytest.approx(97_500.0)
    # The next session (starting at bar 6) trades again; its limit is based on its starting equity.
    assert steps[5][0][0] == 7.0 and steps[5][0][2] == 1.0
    assert steps[-1][3] is True and steps[-1][4]["daily_loss_stops"] == 1


def test_consecutive_losing_trades_flatten_and_block_the_rest_of_the_session() -> None:
    execution = FREE.model_copy(update={"ticket_cost": 1.0})
    risk = RiskConfig(daily_loss_limit=0.5, max_consecutive_losses=2, max_drawdown=0.5)
    env = DualTickerTradingEnv(flat_market(10), config=config(execution=execution, risk=risk))
    steps = run(env, [BUY_0, SELL_0, BUY_1, BUY_0, SELL_1, BUY_0, BUY_0, BUY_1, HOLD])
    # Trade 1 (ticker 0) loses its two tickets; trade 2 (ticker 1) as well: the second loss blocks the
    # session, and ticker 0's open position is flattened at that bar's close.
    assert (steps[4][0][2], steps[4][0][3]) == (0.0, 0.0)
    for step in steps[5:]:
        assert (step[0][2], step[0][3]) == (0.0, 0.0)
    final = steps[-1][4]
    assert final["loss_streak_stops"] == 1 and final["agent_orders"] == 5 and final["flatten_orders"] == 1


def test_a_winning_trade_resets_the_loss_streak() -> None:
    execution = FREE.model_copy(update={"ticket_cost": 1.0})
    risk = RiskConfig(daily_loss_limit=0.5, max_consecutive_losses=2, max_drawdown=0.5)
    opens = [100.0, 100.0, 100.0, 100.0, 110.0, 110.0, 110.0, 110.0, 110.0]
    market = make_market(opens, opens, sessions=[0] * 9)
    env = DualTickerTradingEnv(market, config=config(execution=execution, risk=risk))
    # loss (flat prices), win (bought at 100, sold at 110), loss: never two in a row.
    steps = run(env, [BUY_0, SELL_0, BUY_0, SELL_0, BUY_0, SELL_0, BUY_0])
    assert steps[-1][0][2] == 1.0
    assert env.positions == (1.0, 0.0)


def test_max_drawdown_terminates_the_episode_flat() -> None:
    risk = RiskConfig(daily_loss_limit=0.5, max_consecutive_losses=100, max_drawdown=0.05)
    market = make_market([100, 100, 104, 100, 100, 100], [100, 104, 92, 100, 100, 100], sessions=[0] * 6)
    env = DualTickerTradingEnv(market, config=config(notional_per_unit=50_000.0, risk=risk))
    env.reset(seed=0)
    _, _, terminated, truncated, info = env.step(BUY_0)
    assert (terminated, truncated) == (False, False) and info["equity"] == pytest.approx(102_000.0)
    observation, reward, terminated, truncated, info = env.step(HOLD)
    # 500 shares from 104 to 92: equity 96,000 < 95% of the 102,000 peak.
    assert (terminated, truncated) == (True, False)
    assert info["equity"] == pytest.approx(96_000.0) and info["drawdown_stop"] is True
    assert reward == pytest.approx(100.0 * -6_000.0 / 100_000.0)
    assert observation[2] == 0.0 and env.shares == (0.0, 0.0)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(HOLD)


# ------------------------------------------------------------------------------------------------------------
# Episodes and truncation


def test_truncation_at_the_last_decision_bar_of_the_last_session() -> None:
    # Sessions of 4, 1 (skipped: no decision bar) and 3 bars.
    market = flat_market(8, sessions=[0, 0, 0, 0, 1, 2, 2, 2])
    env = DualTickerTradingEnv(market, config=config(sessions_per_episode=2))
    assert env.session_starts == [0, 5]
    _, info = env.reset(seed=0)
    assert info["bar"] == 0
    steps = run(env, [BUY_BOTH, HOLD, HOLD, HOLD, HOLD])
    assert [step[3] for step in steps] == [False, False, False, False, True]
    assert not any(step[2] for step in steps)
    assert [step[0][0] for step in steps] == [
        1.0,
        2.0,
        5.0,
        6.0,
        7.0,
    ]  # bar 3 closes session 0; bar 4 skipped
    assert (steps[2][0][2], steps[2][0][3]) == (0.0, 0.0)  # flat overnight
    assert steps[-1][4]["flatten_orders"] == 2
    with pytest.raises(ValueError, match="sessions_per_episode=3"):
        DualTickerTradingEnv(market, config=config(sessions_per_episode=3))
