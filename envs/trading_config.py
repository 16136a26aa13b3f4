"""Settings of the trading env: account, episode, reward shaping, execution costs and risk limits."""

from pydantic import BaseModel, ConfigDict, Field

from envs.execution import ExecutionConfig

__all__ = ["RiskConfig", "TradingEnvConfig"]

_FROZEN = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class RiskConfig(BaseModel):
    """Risk limits enforced inside the env."""

    model_config = _FROZEN

    daily_loss_limit: float = Field(
        0.02,
        gt=0.0,
        lt=1.0,
        description=(
            "When equity at a bar's close falls this share below the session's starting equity, both "
            "positions "
            "are flattened at that close and the agent's orders are ignored until the next session."
        ),
    )
    max_consecutive_losses: int = Field(
        5,
        ge=1,
        description=(
            "After this many losing trades in a row within a session (a trade ends when its position returns "
            "to flat; its result includes its costs), flatten and ignore orders until the next session."
        ),
    )
    max_drawdown: float = Field(
        0.10,
        gt=0.0,
        lt=1.0,
        description="The episode terminates when equity at a close falls this share below its episode peak.",
    )


class TradingEnvConfig(BaseModel):
    """Account, episode, reward and cost settings of :class:`DualTickerTradingEnv`."""

    model_config = _FROZEN

    initial_capital: float = Field(
        100_000.0, gt=0.0, description="Cash at the start of every episode, dollars."
    )
    notional_per_unit: float = Field(
        10_000.0,
        gt=0.0,
        description="Dollar size of one position unit per ticker (positions are -1, 0, +1 units).",
    )
    max_position_share: float = Field(
        0.25,
        gt=0.0,
        le=1.0,
        description="A unit is at most this share of current equity (last close's mark) when it is opened.",
    )
    sessions_per_episode: int = Field(
        1, ge=1, description="Consecutive sessions per episode; the first is drawn at random on reset."
    )
    reward_scale: float = Field(
        100.0,
        gt=0.0,
        description="Reward = reward_scale * PnL / initial_capital (100: PnL in percent of capital).",
    )
    ticket_shaping_scale: float = Field(
        0.01,
        ge=0.0,
        description=(
            "Reward units charged per agent order per unit of the controller's ticket_cost. With the "
            "controller's base ticket cost 0.50 this is 0.005 per order, so trading both tickers costs about "
            "what holding both earns (base hold bonus 0.01)."
        ),
    )
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig, description="Fills and costs.")
    risk: RiskConfig = Field(default_factory=RiskConfig, description="Risk limits.")
