"""Tests for validation/metrics.py: formulas on hand-made paths, round trips, baselines, the plot."""

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs.evaluation import COST_COMPONENTS, EpisodeRecord, evaluate_episodes
from envs.market_arrays import MarketArrays, market_arrays
from envs.policies import BuyAndHoldPolicy, FlatPolicy, SignalRulePolicy
from envs.trading_config import TradingEnvConfig
from market.features import build_features
from market.synthetic import SyntheticMarketConfig, generate_market
from validation.metrics import (
    AGGREGATE_KEYS,
    EPISODE_KEYS,
    aggregate_metrics,
    episode_metrics,
    plot_equity_curves,
    round_trips,
    ticker_pnl,
)
from validation.scenarios import session_markets

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NO_COSTS = {name: 0.0 for name in COST_COMPONENTS}


def _record(
    equity: np.ndarray,
    *,
    shares: np.ndarray | None = None,
    prices: tuple[np.ndarray, np.ndarray] | None = None,
    actions: np.ndarray | None = None,
    costs: dict[str, float] | None = None,
    agent_orders: int = 0,
    terminated_early: bool = False,
) -> EpisodeRecord:
    equity = np.asarray(equity, dtype=np.float64)
    length = equity.shape[0] - 1
    shares = np.zeros((length + 1, 2)) if shares is None else np.asarray(shares, dtype=np.float64)
    if prices is None:
        flat = np.full((length + 1, 2), 100.0)
        prices = (flat, flat)
    return EpisodeRecord(
        session="test",
        equity=equity,
        positions=np.sign(shares),
        shares=shares,
        open=prices[0],
        close=prices[1],
        actions=np.full(length, 4) if actions is None else np.asarray(actions, dtype=np.int64),
        orders=np.count_nonzero(np.diff(shares, axis=0), axis=1),
        rewards=np.zeros(length),
        costs=NO_COSTS if costs is None else costs,
        agent_orders=agent_orders,
        flatten_orders=0,
        partial_fills=0,
        daily_loss_stops=0,
        loss_streak_stops=0,
        terminated_early=terminated_early,
        length=length,
        reward=0.0,
        bar_minutes=1,
        initial_capital=float(equity[0]),
    )


def _from_returns(returns: list[float], start: float = 100_000.0) -> np.ndarray:
    return start * np.concatenate(([1.0], np.cumprod(1.0 + np.asarray(returns))))


def test_drawdown_and_total_return_on_a_known_path() -> None:
    metrics = episode_metrics(_record([100.0, 110.0, 99.0, 105.0, 88.0, 120.0]), bars_per_session=390)
    assert metrics["max_drawdown_pct"] == pytest.approx(20.0)  # peak 110, trough 88
    assert metrics["total_return_pct"] == pytest.approx(20.0)
    assert episode_metrics(_record([100.0, 101.0, 102.0]), bars_per_session=390)["max_drawdown_pct"] == 0.0


def test_sharpe_sortino_and_calmar_are_annualized_by_the_bar_size() -> None:
    returns = [0.001, -0.002, 0.003, 0.0005, -0.001, 0.002]
    record = _record(_from_returns(returns))
    r = np.asarray(returns)
    metrics = episode_metrics(record, bars_per_session=390)
    bars_per_year = 252 * 390
    assert metrics["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(bars_per_year))
    downside = math.sqrt(np.mean(np.minimum(r, 0.0) ** 2))
    assert metrics["sortino"] == pytest.approx(r.mean() / downside * math.sqrt(bars_per_year))
    drawdown = metrics["max_drawdown_pct"] / 100
    assert drawdown == pytest.approx(0.002)  # the single -0.2% bar from a peak
    assert metrics["calmar"] == pytest.approx(r.mean() * bars_per_year / drawdown)
    five_minute = episode_metrics(record, bars_per_session=78)
    assert metrics["sharpe"] / five_minute["sharpe"] == pytest.approx(math.sqrt(5.0))


def test_zero_variance_gives_zero_ratios() -> None:
    steady = episode_metrics(_record(_from_returns([0.001] * 10)), bars_per_session=390)
    assert steady["sharpe"] == 0.0 and steady["sortino"] == 0.0 and steady["calmar"] == 0.0
    one_step = episode_metrics(_record([100.0, 101.0]), bars_per_session=390)
    assert one_step["sharpe"] == 0.0


def test_value_at_risk_and_expected_shortfall_are_positive_losses() -> None:
    returns = [value / 100 for value in range(-10, 10)]  # -10% .. +9% in 1% steps, 20 bars
    metrics = episode_metrics(_record(_from_returns(returns)), bars_per_session=390)
    # 5% quantile with linear interpolation: position 0.05 * 19 = 0.95 between -10% and -9%.
    assert metrics["var_95_pct"] == pytest.approx(9.05)
    assert metrics["expected_shortfall_95_pct"] == pytest.approx(10.0)
    gains = episode_metrics(_record(_from_returns([0.01, 0.02, 0.03])), bars_per_session=390)
    assert gains["var_95_pct"] < 0.0  # even the worst bars gained


def _round_trip_record() -> EpisodeRecord:
    """Three known round trips over six steps, zero spreads; open equals close on every bar.

    Ticker 0: buy 10 at 10 (step 1, cost 1), sell at 12 (step 3): +20 - 1 = +19; buy 5 at 12 (step 4),
    flattened at the session close of 10 (step 6): -10. Ticker 1: short 4 at 50 (step 2, cost 7), buy back
    at 47 (step 5, cost 6): +12 - 13 = -1.
    """
    prices = np.array(
        [[10, 50], [10, 50], [11, 50], [12, 48], [12, 47], [11, 47], [10, 47]], dtype=np.float64
    )
    shares = np.array([[0, 0], [10, 0], [10, -4], [0, -4], [5, -4], [5, 0], [0, 0]], dtype=np.float64)
    step_costs = np.array([0.0, 1.0, 7.0, 0.0, 0.0, 6.0, 0.0])
    flows = np.concatenate(([0.0], -(np.diff(shares, axis=0) * prices[1:]).sum(axis=1))) - step_costs
    cash = 1_000.0 + np.cumsum(flows)
    equity = cash + (shares * prices).sum(axis=1)
    return _record(
        equity,
        shares=shares,
        prices=(prices, prices),
        actions=np.array([5, 4, 1, 5, 7, 4]),
        costs={"ticket": 14.0, "spread_fee": 0.0, "impact": 0.0, "total": 14.0},
        agent_orders=5,
    )


def test_round_trips_net_of_costs_and_win_rate() -> None:
    record = _round_trip_record()
    assert record.equity[-1] - record.equity[0] == pytest.approx(20.0 - 10.0 + 12.0 - 14.0)
    trips = round_trips(record)
    assert [(trip.ticker, trip.opened, trip.closed, trip.side) for trip in trips] == [
        (0, 1, 3, 1),
        (1, 2, 5, -1),
        (0, 4, 6, 1),
    ]
    assert [trip.pnl for trip in trips] == pytest.approx([19.0, -1.0, -10.0])
    metrics = episode_metrics(record, bars_per_session=6)
    assert metrics["round_trips"] == 3.0
    assert metrics["win_rate"] == pytest.approx(1 / 3)
    assert metrics["average_holding_bars"] == pytest.approx((2 + 3 + 2) / 3)
    # Traded notional: 100 + 120 + 60 + 50 (ticker 0) + 200 + 188 (ticker 1), over capital 1000, one session.
    assert metrics["turnover"] == pytest.approx(718 / 1_000)
    assert metrics["trades_per_day"] == 5.0
    assert metrics["hold_rate"] == pytest.approx(2 / 6)


def test_ticker_pnl_adds_up_to_the_equity_change() -> None:
    record = _round_trip_record()
    np.testing.assert_allclose(ticker_pnl(record).sum(axis=1), np.diff(record.equity), atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-2, 2), st.integers(-2, 2)), min_size=1, max_size=12),
    st.lists(st.floats(0.5, 2.0), min_size=14, max_size=14),
)
def test_ticker_pnl_splits_every_step_and_trips_cover_the_held_steps(
    path: list[tuple[int, int]], moves: list[float]
) -> None:
    shares = np.array([(0, 0), *path, (0, 0)], dtype=np.float64)
    steps = shares.shape[0] - 1
    closes = np.column_stack([np.cumprod(moves[: steps + 1]) * 10, np.cumprod(moves[::-1][: steps + 1]) * 20])
    opens = np.vstack([closes[:1], closes[:-1] * 1.01])
    traded = np.diff(shares, axis=0)
    fill_prices = np.vstack([opens[1:steps], closes[steps:]])  # the last step flattens at the close
    flows = -(traded * fill_prices).sum(axis=1) - 0.25 * np.count_nonzero(traded, axis=1)
    equity = 1_000.0 + np.concatenate(([0.0], np.cumsum(flows))) + (shares * closes).sum(axis=1)
    record = _record(equity, shares=shares, prices=(opens, closes))
    pnl = ticker_pnl(record)
    np.testing.assert_allclose(pnl.sum(axis=1), np.diff(equity), atol=1e-9)
    trips = round_trips(record)
    for trip in trips:
        assert trip.pnl == pytest.approx(pnl[trip.opened - 1 : trip.closed, trip.ticker].sum(), abs=1e-9)
        assert np.all(np.sign(shares[trip.opened : trip.closed, trip.ticker]) == trip.side)
    # A step that starts with a position open belongs to at most one trip (a sign flip closes one trip and
    # the next starts on the following step).
    for ticker in range(2):
        held = {step for step in range(1, steps + 1) if shares[step - 1, ticker] != 0.0}
        covered = [
            step
            for trip in trips
            if trip.ticker == ticker
            for step in range(trip.opened + 1, trip.closed + 1)
        ]
        assert len(covered) == len(set(covered))
        assert set(covered) <= held


def test_aggregate_pools_returns_and_round_trips() -> None:
    first = _record(_from_returns([0.001, -0.002, 0.003]))
    second = _record(_from_returns([-0.001, 0.0005]), terminated_early=True)
    trips = _round_trip_record()
    aggregate = aggregate_metrics([first, second, trips], bars_per_session=390)
    assert tuple(aggregate) == AGGREGATE_KEYS
    assert aggregate["episodes"] == 3.0
    assert aggregate["early_termination_rate"] == pytest.approx(1 / 3)
    pooled = np.concatenate([first.returns, second.returns, trips.returns])
    assert aggregate["sharpe"] == pytest.approx(pooled.mean() / pooled.std(ddof=1) * math.sqrt(252 * 390))
    singles = [episode_metrics(record, bars_per_session=390) for record in (first, second, trips)]
    mean_return = np.mean([row["total_return_pct"] for row in singles])
    assert aggregate["mean_episode_return_pct"] == pytest.approx(mean_return)
    # The scenario's episodes traded back to back: returns compound, drawdown spans episode boundaries.
    compounded = np.concatenate(([1.0], np.cumprod(1.0 + pooled)))
    assert aggregate["total_return_pct"] == pytest.approx(100.0 * (compounded[-1] - 1.0))
    peak_fall = np.max(1.0 - compounded / np.maximum.accumulate(compounded))
    assert aggregate["max_drawdown_pct"] == pytest.approx(100.0 * peak_fall)
    assert aggregate["max_drawdown_pct"] >= aggregate["max_drawdown_pct_worst"] - 1e-12
    assert aggregate["max_drawdown_pct_worst"] == max(row["max_drawdown_pct"] for row in singles)
    assert aggregate["round_trips"] == 3.0 and aggregate["win_rate"] == pytest.approx(1 / 3)
    assert aggregate["cost_total"] == pytest.approx(14.0 / 3)


def test_an_empty_scenario_aggregates_to_nan_with_zero_episodes() -> None:
    aggregate = aggregate_metrics([], bars_per_session=390)
    assert aggregate["episodes"] == 0.0
    assert all(math.isnan(aggregate[key]) for key in AGGREGATE_KEYS if key != "episodes")
    with pytest.raises(ValueError, match="bars_per_session"):
        aggregate_metrics([], bars_per_session=0.0)


def test_episode_metrics_have_every_key() -> None:
    assert tuple(episode_metrics(_round_trip_record(), bars_per_session=6)) == EPISODE_KEYS


# ------------------------------------------------------------------------------------------------------------
# Baselines
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sessions() -> list[MarketArrays]:
    bars = generate_market(SyntheticMarketConfig(sessions=5), seed=2).bars
    bars = bars.filter(pl.col("ts").dt.minute() % 10 == 0)
    features = build_features(bars).with_columns(pl.col("log_return_5").clip(-1.0, 1.0).alias("signal"))
    market = market_arrays(bars, features, feature_columns=["log_return_1", "signal"])
    return [part for _, part in session_markets(market)]


def test_flat_baseline_has_no_trades_return_or_costs(sessions: list[MarketArrays]) -> None:
    records = evaluate_episodes(FlatPolicy(), sessions, env_config=TradingEnvConfig())
    metrics = aggregate_metrics(records, bars_per_session=39)
    assert metrics["episodes"] == len(sessions)
    for key in ("total_return_pct", "trades_per_day", "turnover", "round_trips", "cost_total", "sharpe"):
        assert metrics[key] == 0.0, key
    assert metrics["hold_rate"] == 1.0


def test_baselines_trade_as_designed_in_the_env(sessions: list[MarketArrays]) -> None:
    config = TradingEnvConfig()
    held = evaluate_episodes(BuyAndHoldPolicy(), sessions, env_config=config)
    hold = aggregate_metrics(held, bars_per_session=39)
    assert hold["trades_per_day"] == 2.0  # one buy per ticker; the close flattens
    assert hold["round_trips"] == 2 * len(sessions)
    assert hold["cost_total"] > 0.0
    rule = SignalRulePolicy.from_feature_names(
        sessions[0].feature_names, entry_threshold=0.0005, exit_threshold=0.0
    )
    records = evaluate_episodes(rule, sessions, env_config=config)
    assert aggregate_metrics(records, bars_per_session=39)["trades_per_day"] > 2.0
    record = records[0]
    signal = sessions[0].features[: record.length, [1, 3]]
    held = record.positions[:-1]
    entry = np.where(signal > 0.0005, 1.0, np.where(signal < -0.0005, -1.0, 0.0))
    wanted = np.where((held > 0) & (signal >= 0.0), 1.0, np.where((held < 0) & (signal <= 0.0), -1.0, entry))
    steps_toward = np.sign(wanted - held)
    decoded = np.column_stack([record.actions // 3 - 1, record.actions % 3 - 1])
    np.testing.assert_array_equal(decoded, steps_toward)


def test_plot_equity_curves_writes_a_png(sessions: list[MarketArrays], tmp_path: Path) -> None:
    config = TradingEnvConfig()
    curves = {
        "flat": evaluate_episodes(FlatPolicy(), sessions, env_config=config),
        "buy_and_hold": evaluate_episodes(BuyAndHoldPolicy(), sessions, env_config=config),
        "empty": [],
    }
    path = plot_equity_curves(curves, tmp_path / "plots" / "equity.png", title="test")
    assert path.read_bytes().startswith(PNG_SIGNATURE)
