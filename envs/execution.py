"""Execution and cost model of the trading env: ticket, spread and fees, square-root impact, participation.

One order is a signed number of shares sent for one ticker at one bar. The model, per order:

- **Fill price**: the bar's open for the agent's orders (an action decided on bar ``t``'s close reaches the
  market at the open of bar ``t + latency_bars``); the bar's close for flattening orders (session close and
  risk stops, see :mod:`envs.trading`). Costs are charged separately, never folded into the price.
- **Participation cap**: at most ``participation_cap * bar_volume`` shares of an agent order fill in its bar;
  the remainder is **cancelled**, not carried to the next bar (the agent sees the smaller position in its
  next observation and may order again). A bar with zero volume fills nothing, and an order that fills
  nothing pays nothing. Flattening orders are not capped: the position must be closed.
- **Ticket**: ``ticket_cost`` dollars per order that fills at least one share (fractional shares are allowed).
- **Spread and fees**: ``(spread_bps + fee_bps) * 1e-4 * filled_notional``; ``spread_bps`` is the cost of
  crossing the spread on one side (half the quoted spread), ``fee_bps`` the exchange and broker fees.
- **Square-root impact**: ``impact_bps = impact_coefficient * sqrt(participation) * 1e4`` with
  ``participation = filled_shares / bar_volume`` (counted as 1 when it exceeds 1 or the volume is zero,
  which can only happen for an uncapped flattening order), so the impact cost in dollars is
  ``impact_coefficient * sqrt(participation) * filled_notional``.

The functions here are the reference implementation in scalar float math (no allocation). The env inlines
the same arithmetic in its hot path for speed; ``tests/envs/test_trading.py`` checks that both agree.
"""

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BASIS_POINT",
    "ExecutionConfig",
    "fillable_shares",
    "impact_cost",
    "order_cost",
    "proportional_cost",
]

BASIS_POINT = 1e-4


class ExecutionConfig(BaseModel):
    """How orders fill and what they cost (see the module docstring for the formulas)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    ticket_cost: float = Field(0.50, ge=0.0, description="Fixed cost in dollars per order that fills.")
    spread_bps: float = Field(
        1.0,
        ge=0.0,
        description="Cost of crossing the spread on one side, in basis points of traded notional.",
    )
    fee_bps: float = Field(
        0.5, ge=0.0, description="Exchange and broker fees in basis points of traded notional."
    )
    impact_coefficient: float = Field(
        0.001,
        ge=0.0,
        description=(
            "Square-root impact: cost = coefficient * sqrt(filled_shares / bar_volume) * notional. "
            "The default "
            "0.001 matches a daily volatility of about 2% spread over a 390-bar session (0.02 / sqrt(390)): "
            "about 1 bp at 1% of the bar's volume, 3.2 bp at 10%."
        ),
    )
    participation_cap: float = Field(
        0.1,
        gt=0.0,
        le=1.0,
        description="Largest share of a bar's volume one order may take; the remainder is cancelled.",
    )
    latency_bars: int = Field(
        1, ge=1, description="An action decided on bar t's close fills at the open of bar t + latency_bars."
    )


def fillable_shares(order_shares: float, volume: float, *, participation_cap: float) -> float:
    """Signed shares of ``order_shares`` that fill in a bar of ``volume`` shares under the cap."""
    limit = participation_cap * volume
    if order_shares > limit:
        return limit
    if order_shares < -limit:
        return -limit
    return order_shares


def proportional_cost(notional: float, *, spread_bps: float, fee_bps: float) -> float:
    """Spread and fee cost in dollars of trading ``notional`` dollars (absolute value)."""
    return (spread_bps + fee_bps) * BASIS_POINT * abs(notional)


def impact_cost(shares: float, price: float, volume: float, *, impact_coefficient: float) -> float:
    """Square-root market impact in dollars of trading ``shares`` (signed) at ``price``, bar ``volume``."""
    size = abs(shares)
    participation = size / volume if volume > 0.0 else 1.0
    if participation > 1.0:
        participation = 1.0
    return impact_coefficient * participation**0.5 * size * price


def order_cost(
    shares: float, price: float, volume: float, *, config: ExecutionConfig
) -> tuple[float, float, float]:
    """Ticket, spread-and-fee and impact cost in dollars of an order that filled ``shares`` at ``price``.

    An order that filled nothing costs nothing.
    """
    if shares == 0.0:
        return 0.0, 0.0, 0.0
    return (
        config.ticket_cost,
        proportional_cost(shares * price, spread_bps=config.spread_bps, fee_bps=config.fee_bps),
        impact_cost(shares, price, volume, impact_coefficient=config.impact_coefficient),
    )
