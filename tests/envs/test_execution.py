import math

import pytest
from pydantic import ValidationError

from envs.execution import ExecutionConfig, fillable_shares, impact_cost, order_cost, proportional_cost


def test_fillable_shares_caps_both_sides_at_the_participation_limit() -> None:
    assert fillable_shares(500.0, 1_000.0, participation_cap=0.1) == 100.0
    assert fillable_shares(-500.0, 1_000.0, participation_cap=0.1) == -100.0
    assert fillable_shares(40.0, 1_000.0, participation_cap=0.1) == 40.0
    assert fillable_shares(-40.0, 1_000.0, participation_cap=0.1) == -40.0


def test_a_zero_volume_bar_fills_nothing() -> None:
    assert fillable_shares(10.0, 0.0, participation_cap=0.5) == 0.0
    assert fillable_shares(-10.0, 0.0, participation_cap=0.5) == 0.0


def test_proportional_cost_is_spread_plus_fees_in_basis_points_of_notional() -> None:
    # 1.0 bp + 0.5 bp of $20,000 = $3.
    assert proportional_cost(20_000.0, spread_bps=1.0, fee_bps=0.5) == pytest.approx(3.0)
    assert proportional_cost(-20_000.0, spread_bps=1.0, fee_bps=0.5) == pytest.approx(3.0)


def test_impact_cost_follows_the_square_root_of_participation() -> None:
    # 100 shares of 10,000 traded: participation 1%, sqrt 0.1; 0.01 * 0.1 * $5,000 = $5.
    assert impact_cost(100.0, 50.0, 10_000.0, impact_coefficient=0.01) == pytest.approx(5.0)
    assert impact_cost(-100.0, 50.0, 10_000.0, impact_coefficient=0.01) == pytest.approx(5.0)
    # Four times the size: twice the rate on four times the notional.
    assert impact_cost(400.0, 50.0, 10_000.0, impact_coefficient=0.01) == pytest.approx(40.0)


def test_impact_participation_is_capped_at_one_and_zero_volume_counts_as_full() -> None:
    assert impact_cost(300.0, 10.0, 100.0, impact_coefficient=0.02) == pytest.approx(0.02 * 3_000.0)
    assert impact_cost(300.0, 10.0, 0.0, impact_coefficient=0.02) == pytest.approx(0.02 * 3_000.0)
    assert math.isfinite(impact_cost(1.0, 10.0, 0.0, impact_coefficient=0.02))


def test_order_cost_splits_ticket_spread_and_impact() -> None:
    config = ExecutionConfig(ticket_cost=0.5, spread_bps=1.0, fee_bps=0.5, impact_coefficient=0.01)
    ticket, proportional, impact = order_cost(10.0, 100.0, 1_000.0, config=config)
    assert ticket == 0.5
    assert proportional == pytest.approx(0.15)
    assert impact == pytest.approx(0.01 * math.sqrt(0.01) * 1_000.0)
    assert order_cost(0.0, 100.0, 1_000.0, config=config) == (0.0, 0.0, 0.0)


def test_execution_config_defaults_and_validation() -> None:
    config = ExecutionConfig()
    assert (config.ticket_cost, config.spread_bps, config.fee_bps, config.latency_bars) == (0.5, 1.0, 0.5, 1)
    with pytest.raises(ValidationError, match="latency_bars"):
        ExecutionConfig(latency_bars=0)
    with pytest.raises(ValidationError, match="participation_cap"):
        ExecutionConfig(participation_cap=0.0)
    with pytest.raises(ValidationError, match="ticket_cost"):
        ExecutionConfig(ticket_cost=-1.0)
    with pytest.raises(ValidationError, match="spread_bps"):
        ExecutionConfig(spread_bps=float("nan"))
    with pytest.raises(ValidationError, match="frozen"):
        config.fee_bps = 2.0  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        ExecutionConfig(slippage=1.0)  # type: ignore[call-arg]
