"""Hand-made markets, configs, action codes and a rollout helper shared by the envs/trading.py tests."""

from collections.abc import Sequence

import numpy as np

from envs.execution import ExecutionConfig
from envs.market_arrays import MarketArrays
from envs.trading import DualTickerTradingEnv
from envs.trading_config import RiskConfig, TradingEnvConfig

HOLD = 4
BUY_0, SELL_0 = 7, 1  # ticker 0 buys / sells, ticker 1 holds
BUY_1, SELL_1 = 5, 3  # ticker 1 buys / sells, ticker 0 holds
BUY_BOTH = 8
START = np.datetime64("2024-01-02T14:30", "ns")


def make_market(
    open_0: Sequence[float],
    close_0: Sequence[float],
    *,
    sessions: Sequence[int],
    open_1: Sequence[float] | None = None,
    close_1: Sequence[float] | None = None,
    volume: float | Sequence[Sequence[float]] = 1e12,
    regime_score: Sequence[float] | None = None,
) -> MarketArrays:
    """A hand-made market; each ticker has one feature (the bar index, plus 0.5 for ticker 1)."""
    bars = len(open_0)
    open_1 = [50.0] * bars if open_1 is None else open_1
    close_1 = [50.0] * bars if close_1 is None else close_1
    index = np.arange(bars, dtype=np.float32)
    features = np.ascontiguousarray(np.column_stack([index, index + 0.5]))
    volumes = (
        np.full((bars, 2), float(volume)) if np.isscalar(volume) else np.asarray(volume, dtype=np.float64)
    )
    session_index = np.asarray(sessions, dtype=np.int64)
    return MarketArrays(
        features=features,
        feature_names=("A:index", "B:index"),
        open=np.column_stack([open_0, open_1]).astype(np.float64),
        close=np.column_stack([close_0, close_1]).astype(np.float64),
        volume=np.ascontiguousarray(volumes),
        session_index=session_index,
        timestamps=START + session_index * np.timedelta64(1, "D") + np.arange(bars) * np.timedelta64(60, "s"),
        regime_score=np.zeros(bars, np.float32)
        if regime_score is None
        else np.asarray(regime_score, np.float32),
        symbols=("A", "B"),
    )


def flat_market(
    bars: int, *, sessions: Sequence[int] | None = None, price: float = 100.0, volume: float = 1e12
) -> MarketArrays:
    return make_market(
        [price] * bars, [price] * bars, sessions=[0] * bars if sessions is None else sessions, volume=volume
    )


FREE = ExecutionConfig(
    ticket_cost=0.0, spread_bps=0.0, fee_bps=0.0, impact_coefficient=0.0, participation_cap=1.0
)
LOOSE = RiskConfig(daily_loss_limit=0.9, max_consecutive_losses=1_000, max_drawdown=0.99)


def config(**overrides: object) -> TradingEnvConfig:
    values: dict[str, object] = {
        "notional_per_unit": 1_000.0,
        "max_position_share": 1.0,
        "execution": FREE,
        "risk": LOOSE,
    }
    values.update(overrides)
    return TradingEnvConfig.model_validate(values)


def run(env: DualTickerTradingEnv, actions: Sequence[int], *, start_session: int = 0) -> list[tuple]:
    env.reset(seed=0, options={"start_session": start_session})
    results = []
    for action in actions:
        observation, reward, terminated, truncated, info = env.step(action)
        results.append((observation.copy(), reward, terminated, truncated, info))
    return results
