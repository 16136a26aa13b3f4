"""The gymnasium trading env, its execution and cost model, and the market arrays it reads."""

from envs.execution import ExecutionConfig, fillable_shares, impact_cost, order_cost, proportional_cost
from envs.market_arrays import MarketArrays, market_arrays, require_finite_features
from envs.trading import ACTION_MEANINGS, DualTickerTradingEnv, decode_action
from envs.trading_config import RiskConfig, TradingEnvConfig

__all__ = [
    "ACTION_MEANINGS",
    "DualTickerTradingEnv",
    "ExecutionConfig",
    "MarketArrays",
    "RiskConfig",
    "TradingEnvConfig",
    "decode_action",
    "fillable_shares",
    "impact_cost",
    "market_arrays",
    "order_cost",
    "proportional_cost",
    "require_finite_features",
]
