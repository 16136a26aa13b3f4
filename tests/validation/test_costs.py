"""Transaction-cost analysis on hand-built episodes: every figure computed by hand."""

import math

import numpy as np
import pytest

from envs.evaluation import EpisodeRecord
from validation.costs import transaction_costs


def _episode(
    shares: list[list[float]],
    open_: list[list[float]],
    close: list[list[float]],
    costs: dict[str, float],
    *,
    agent_orders: int,
    flatten_orders: int,
    partial_fills: int = 0,
) -> EpisodeRecord:
    held = np.asarray(shares, dtype=np.float64)
    length = held.shape[0] - 1
    return EpisodeRecord(
        session="2025-01-02",
        equity=np.full(length + 1, 100_000.0),
        positions=np.sign(held),
        shares=held,
        open=np.asarray(open_, dtype=np.float64),
        close=np.asarray(close, dtype=np.float64),
        actions=np.zeros(length, dtype=np.int64),
        orders=np.count_nonzero(np.diff(held, axis=0), axis=1),
        rewards=np.zeros(length),
        costs=costs,
        agent_orders=agent_orders,
        flatten_orders=flatten_orders,
        partial_fills=partial_fills,
        daily_loss_stops=0,
        loss_streak_stops=0,
        terminated_early=False,
        length=length,
        reward=0.0,
        bar_minutes=1,
        initial_capital=100_000.0,
    )


def test_orders_costs_participation_and_slippage_by_hand() -> None:
    # step 1: buy 10 NVDA at bar 1's open (101, decided at bar 0's close 100); step 2: sell 5 MSFT at bar 2's
    # open (49, decided at bar 1's close 50); step 3 (last): flatten both at bar 3's close.
    record = _episode(
        shares=[[0, 0], [10, 0], [10, -5], [0, 0]],
        open_=[[100, 50], [101, 50], [102, 49], [103, 48]],
        close=[[100, 50], [102, 50], [102, 48], [104, 47]],
        costs={"ticket": 2.0, "spread_fee": 1.0, "impact": 0.5, "total": 3.5},
        agent_orders=2,
        flatten_orders=2,
        partial_fills=1,
    )
    volume = np.array([[1000, 1000], [100, 1000], [1000, 0], [1000, 1000]], dtype=np.float64)
    tca = transaction_costs([record], [volume])
    notional = 10 * 101 + 5 * 49 + 10 * 104 + 5 * 47
    assert tca.traded_notional == pytest.approx(notional)
    assert tca.agent_orders == 2 and tca.flatten_orders == 2
    assert tca.cost_per_order["total"] == pytest.approx(3.5 / 4)
    assert tca.cost_bps["ticket"] == pytest.approx(1e4 * 2.0 / notional)
    # participation: 10 of 100 shares; the MSFT bar had no volume, so it counts as 1
    assert tca.participation_mean == pytest.approx((0.1 + 1.0) / 2)
    assert tca.participation_max == pytest.approx(1.0)
    assert tca.partial_fill_share == pytest.approx(0.5)
    # signed against the order: the buy filled 100 bps above its decision price (against it), the sell 200 bps
    # below its decision price (against it too)
    buy = (101 / 100 - 1) * 1e4
    sell = -1 * (49 / 50 - 1) * 1e4
    assert tca.slippage_bps_mean == pytest.approx((buy + sell) / 2)
    assert tca.slippage_bps_median == pytest.approx((buy + sell) / 2)


def test_nothing_traded_gives_nan_not_zero_division() -> None:
    record = _episode(
        shares=[[0, 0], [0, 0], [0, 0]],
        open_=[[100, 50]] * 3,
        close=[[100, 50]] * 3,
        costs=dict.fromkeys(("ticket", "spread_fee", "impact", "total"), 0.0),
        agent_orders=0,
        flatten_orders=0,
    )
    tca = transaction_costs([record], [np.ones((3, 2))])
    assert tca.traded_notional == 0.0
    assert math.isnan(tca.cost_per_order["total"]) and math.isnan(tca.slippage_bps_mean)
    assert tca.as_dict()["participation_mean"] is None


def test_volumes_must_pair_with_episodes() -> None:
    record = _episode(
        shares=[[0, 0], [1, 0], [0, 0]],
        open_=[[100, 50]] * 3,
        close=[[100, 50]] * 3,
        costs=dict.fromkeys(("ticket", "spread_fee", "impact", "total"), 0.0),
        agent_orders=1,
        flatten_orders=1,
    )
    with pytest.raises(ValueError, match="1 episodes but 2 volume arrays"):
        transaction_costs([record], [np.ones((3, 2)), np.ones((3, 2))])
    with pytest.raises(ValueError, match="has 3 bars but 2 volume rows"):
        transaction_costs([record], [np.ones((2, 2))])
