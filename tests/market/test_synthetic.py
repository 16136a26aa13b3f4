"""Tests for the synthetic two-ticker market generator."""

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from market.calendar import SESSION_MINUTES, sessions, trading_days
from market.synthetic import (
    REGIMES,
    SyntheticMarket,
    SyntheticMarketConfig,
    _ar1,
    block_return_pairs,
    generate_market,
)

BAR_SCHEMA = {
    "ts": pl.Datetime("ns", "UTC"),
    "symbol": pl.Utf8,
    "open": pl.Float64,
    "high": pl.Float64,
    "low": pl.Float64,
    "close": pl.Float64,
    "volume": pl.Float64,
}
# Statistical tolerance in heteroskedasticity-robust standard errors; the generator has fat tails.
Z_LIMIT = 4.5


@pytest.fixture(scope="module")
def year_market() -> SyntheticMarket:
    return generate_market(SyntheticMarketConfig(sessions=250), seed=11)


def with_session_returns(market: SyntheticMarket) -> pl.DataFrame:
    """Bars with New York session date, regime, minute of session and close-to-close log return within it."""
    session = pl.col("ts").dt.convert_time_zone("America/New_York").dt.date()
    return (
        market.bars.with_columns(session.alias("session"))
        .join(market.regimes, on="session", how="left")
        .sort("symbol", "ts")
        .with_columns(
            pl.int_range(pl.len()).over("symbol", "session").alias("minute"),
            pl.len().over("symbol", "session").alias("session_bars"),
            pl.col("close").log().diff().over("symbol", "session").alias("log_return"),
        )
    )


def minute_returns(market: SyntheticMarket, symbol: str) -> np.ndarray:
    """Within-session close-to-close log returns of one symbol, in time order (overnight moves excluded)."""
    frame = with_session_returns(market).filter(pl.col("symbol") == symbol)
    return frame["log_return"].drop_nulls().to_numpy()


def robust_slope_z(predictor: np.ndarray, target: np.ndarray, slope: float = 0.0) -> float:
    """Distance of the OLS slope of target on predictor from ``slope`` in heteroskedasticity-robust SEs."""
    residual = target - slope * predictor
    estimate = float(np.sum(predictor * target) / np.sum(predictor**2))
    standard_error = float(np.sqrt(np.sum(predictor**2 * residual**2)) / np.sum(predictor**2))
    return (estimate - slope) / standard_error


def test_same_seed_gives_identical_frames() -> None:
    config = SyntheticMarketConfig(sessions=5, mode="planted")
    first = generate_market(config, seed=7)
    second = generate_market(config, seed=7)
    assert first.bars.equals(second.bars)
    assert first.regimes.equals(second.regimes)


def test_different_seeds_give_different_bars() -> None:
    config = SyntheticMarketConfig(sessions=5)
    first = generate_market(config, seed=1)
    second = generate_market(config, seed=2)
    assert first.bars["ts"].equals(second.bars["ts"])
    assert not first.bars["close"].equals(second.bars["close"])
    assert not first.bars["volume"].equals(second.bars["volume"])


def test_modes_share_the_regime_path() -> None:
    markets = {
        mode: generate_market(SyntheticMarketConfig(sessions=40, mode=mode), seed=5)
        for mode in ("regimes", "martingale", "planted")
    }
    assert markets["regimes"].regimes.equals(markets["martingale"].regimes)
    assert markets["regimes"].regimes.equals(markets["planted"].regimes)


def test_bar_frame_is_canonical(year_market: SyntheticMarket) -> None:
    bars = year_market.bars
    assert dict(bars.schema) == BAR_SCHEMA
    assert bars.equals(bars.sort("symbol", "ts"))
    assert bars["symbol"].unique().sort().to_list() == ["MSFT", "NVDA"]
    assert bars.select(pl.struct("symbol", "ts").is_duplicated().any()).item() is False
    assert year_market.regimes.schema == pl.Schema({"session": pl.Date, "regime": pl.Utf8})


def test_first_open_is_the_start_price() -> None:
    market = generate_market(SyntheticMarketConfig(sessions=1, start_prices=(50.0, 75.5)), seed=0)
    first = market.bars.group_by("symbol").agg(pl.col("open").first()).sort("symbol")
    assert first["open"].to_list() == pytest.approx([75.5, 50.0], rel=1e-12)  # MSFT sorts before NVDA


def test_sessions_follow_the_nyse_calendar() -> None:
    count = 140
    market = generate_market(SyntheticMarketConfig(start=date(2025, 6, 2), sessions=count), seed=3)
    expected_days = trading_days(date(2025, 6, 2), date(2026, 6, 1))[:count]
    bounds = sessions(expected_days)
    frame = with_session_returns(market)
    counts = frame.group_by("symbol", "session").agg(pl.len().alias("bars"))
    for symbol in ("NVDA", "MSFT"):
        per_day = dict(counts.filter(pl.col("symbol") == symbol).select("session", "bars").iter_rows())
        assert sorted(per_day) == expected_days
        assert per_day[date(2025, 7, 3)] == 210
        assert per_day[date(2025, 11, 28)] == 210
        full_days = [day for day in expected_days if day not in (date(2025, 7, 3), date(2025, 11, 28))]
        assert {per_day[day] for day in full_days} == {SESSION_MINUTES}
    assert date(2025, 7, 4) not in market.regimes["session"].to_list()
    assert date(2025, 11, 27) not in market.regimes["session"].to_list()
    assert market.regimes["session"].to_list() == expected_days
    weekdays = frame["session"].dt.weekday().unique().to_list()
    assert set(weekdays) <= {1, 2, 3, 4, 5}
    # Every bar start sits on the session's 1-minute grid: open + minute index.
    bounds = bounds.select(
        "session", pl.col("open").alias("session_open"), pl.col("close").alias("session_close")
    )
    grid = frame.join(bounds, on="session").with_columns(
        (pl.col("session_open") + pl.duration(minutes=pl.col("minute"))).alias("expected_ts")
    )
    assert (grid["ts"] == grid["expected_ts"]).all()
    assert (grid["ts"] < grid["session_close"]).all()


def test_start_on_a_holiday_begins_at_the_next_trading_day() -> None:
    market = generate_market(SyntheticMarketConfig(start=date(2025, 1, 1), sessions=6), seed=0)
    days = market.regimes["session"].to_list()
    assert days[0] == date(2025, 1, 2)
    assert date(2025, 1, 9) not in days  # national day of mourning
    assert len(days) == 6
    assert market.bars["ts"].min() == datetime(2025, 1, 2, 14, 30, tzinfo=UTC)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    session_count=st.integers(min_value=1, max_value=4),
    mode=st.sampled_from(["regimes", "martingale", "planted"]),
    start_offset=st.integers(min_value=0, max_value=3000),
)
def test_bars_are_valid_ohlc(seed: int, session_count: int, mode: str, start_offset: int) -> None:
    start = date(2018, 1, 1) + timedelta(days=start_offset)
    config = SyntheticMarketConfig(start=start, sessions=session_count, mode=mode)  # type: ignore[arg-type]
    market = generate_market(config, seed=seed)
    bars = market.bars
    days = trading_days(start, start + timedelta(days=30))[:session_count]
    assert bars.height == 2 * int(sessions(days)["minutes"].sum())
    assert market.regimes.height == session_count
    open_, high, low, close, volume = (
        bars[column].to_numpy() for column in ("open", "high", "low", "close", "volume")
    )
    prices = np.stack((open_, high, low, close))
    assert np.isfinite(prices).all()
    assert (prices > 0).all()
    assert (high >= np.maximum(open_, close)).all()
    assert (low <= np.minimum(open_, close)).all()
    assert (volume > 0).all()
    assert (volume == np.round(volume)).all()


def test_open_is_near_the_previous_close_within_a_session(year_market: SyntheticMarket) -> None:
    frame = with_session_returns(year_market).with_columns(
        (pl.col("open") / pl.col("close").shift(1).over("symbol", "session")).log().abs().alias("open_gap")
    )
    open_gap = frame["open_gap"].drop_nulls().to_numpy()
    bar_move = frame["log_return"].drop_nulls().abs().to_numpy()
    assert open_gap.max() < 0.005
    assert np.median(open_gap) < 0.25 * np.median(bar_move)


def test_closes_have_no_stale_runs(year_market: SyntheticMarket) -> None:
    unchanged = (
        year_market.bars.with_columns((pl.col("close").diff().over("symbol") == 0).alias("unchanged"))
        .get_column("unchanged")
        .fill_null(False)
    )
    assert unchanged.sum() < 10


def test_intraday_volatility_is_u_shaped(year_market: SyntheticMarket) -> None:
    frame = with_session_returns(year_market).filter(pl.col("session_bars") == SESSION_MINUTES)
    absolute = pl.col("log_return").abs()
    by_window = frame.select(
        absolute.filter(pl.col("minute") < 30).mean().alias("open"),
        absolute.filter(pl.col("minute").is_between(165, 224)).mean().alias("midday"),
        absolute.filter(pl.col("minute") >= SESSION_MINUTES - 30).mean().alias("close"),
    ).row(0, named=True)
    assert by_window["open"] > 1.2 * by_window["midday"]
    assert by_window["close"] > 1.1 * by_window["midday"]


def test_intraday_volume_is_u_shaped(year_market: SyntheticMarket) -> None:
    frame = with_session_returns(year_market).filter(pl.col("session_bars") == SESSION_MINUTES)
    for symbol in ("NVDA", "MSFT"):
        volume = pl.col("volume")
        by_window = (
            frame.filter(pl.col("symbol") == symbol)
            .select(
                volume.filter(pl.col("minute") < 30).mean().alias("open"),
                volume.filter(pl.col("minute").is_between(165, 224)).mean().alias("midday"),
                volume.filter(pl.col("minute") >= SESSION_MINUTES - 30).mean().alias("close"),
            )
            .row(0, named=True)
        )
        assert by_window["open"] > 1.5 * by_window["midday"]
        assert by_window["close"] > 1.5 * by_window["midday"]


def test_regimes_cover_every_session_and_persist(year_market: SyntheticMarket) -> None:
    regimes = year_market.regimes
    bar_sessions = with_session_returns(year_market)["session"].unique().sort()
    assert regimes["session"].equals(bar_sessions, check_names=False)
    assert regimes["session"].is_unique().all()
    assert set(regimes["regime"].to_list()) == set(REGIMES)
    labels = regimes["regime"].to_list()
    runs = 1 + sum(before != after for before, after in pairwise(labels))
    assert len(labels) / runs > 2.0


def test_full_persistence_keeps_the_initial_regime() -> None:
    config = SyntheticMarketConfig(sessions=30, regime_persistence=1.0, initial_regime="volatile")
    market = generate_market(config, seed=9)
    assert market.regimes["regime"].unique().to_list() == ["volatile"]


def test_zero_persistence_switches_every_session() -> None:
    market = generate_market(SyntheticMarketConfig(sessions=50, regime_persistence=0.0), seed=9)
    labels = market.regimes["regime"].to_list()
    assert all(before != after for before, after in pairwise(labels))


def regime_statistics(market: SyntheticMarket) -> pl.DataFrame:
    wide = (
        with_session_returns(market)
        .drop_nulls("log_return")
        .pivot(on="symbol", index=["ts", "regime"], values="log_return")
    )
    return wide.group_by("regime").agg(
        pl.corr("NVDA", "MSFT").alias("correlation"),
        pl.col("NVDA").std().alias("nvda_std"),
        pl.col("MSFT").std().alias("msft_std"),
    )


def test_correlation_is_higher_in_calm_than_in_breakdown(year_market: SyntheticMarket) -> None:
    statistics = {row["regime"]: row for row in regime_statistics(year_market).iter_rows(named=True)}
    assert statistics["calm"]["correlation"] > 0.5
    assert statistics["trending"]["correlation"] > 0.5
    assert abs(statistics["correlation_breakdown"]["correlation"]) < 0.2
    assert statistics["calm"]["correlation"] - statistics["correlation_breakdown"]["correlation"] > 0.4


def test_magnitudes_are_realistic(year_market: SyntheticMarket) -> None:
    statistics = {row["regime"]: row for row in regime_statistics(year_market).iter_rows(named=True)}
    minute_stds = [row[column] for row in statistics.values() for column in ("nvda_std", "msft_std")]
    assert all(0.0003 < value < 0.0025 for value in minute_stds)
    annualized = [value * np.sqrt(252 * SESSION_MINUTES) for value in minute_stds]
    assert all(0.15 < value < 0.85 for value in annualized)
    assert statistics["volatile"]["nvda_std"] > 1.5 * statistics["calm"]["nvda_std"]


def session_trend_agreement(market: SyntheticMarket) -> float:
    """Share of consecutive trending sessions (same run) whose open-to-close returns have the same sign."""
    daily = (
        with_session_returns(market)
        .filter(pl.col("symbol") == "NVDA")
        .group_by("session", maintain_order=True)
        .agg((pl.col("close").last() / pl.col("open").first()).log().alias("day_return"))
        .join(market.regimes, on="session")
        .sort("session")
    )
    regimes = daily["regime"].to_list()
    signs = np.sign(daily["day_return"].to_numpy())
    pairs = [
        signs[index] == signs[index - 1]
        for index in range(1, len(regimes))
        if regimes[index] == regimes[index - 1] == "trending"
    ]
    assert len(pairs) > 20
    return float(np.mean(pairs))


def test_trending_drift_persists_across_sessions() -> None:
    trending_config = SyntheticMarketConfig(sessions=400, trend_daily_drift=0.05)
    martingale_config = trending_config.model_copy(update={"mode": "martingale"})
    trending = generate_market(trending_config, seed=4)
    martingale = generate_market(martingale_config, seed=4)
    assert session_trend_agreement(trending) > 0.8
    assert session_trend_agreement(martingale) < 0.7


@pytest.fixture(scope="module")
def martingale_market() -> SyntheticMarket:
    return generate_market(SyntheticMarketConfig(sessions=300, mode="martingale"), seed=21)


@pytest.mark.parametrize("symbol", ["NVDA", "MSFT"])
def test_martingale_minute_returns_have_no_autocorrelation(
    martingale_market: SyntheticMarket, symbol: str
) -> None:
    returns = minute_returns(martingale_market, symbol)
    for lag in range(1, 11):
        assert abs(robust_slope_z(returns[:-lag], returns[lag:])) < Z_LIMIT, lag
        assert abs(np.corrcoef(returns[:-lag], returns[lag:])[0, 1]) < 0.03, lag


@pytest.mark.parametrize("horizon", [5, 10, 30])
def test_martingale_past_return_does_not_predict_next_return(
    martingale_market: SyntheticMarket, horizon: int
) -> None:
    for symbol in ("NVDA", "MSFT"):
        pairs = block_return_pairs(martingale_market.bars, symbol=symbol, horizon_bars=horizon)
        predictor, target = pairs["predictor"].to_numpy(), pairs["target"].to_numpy()
        assert abs(robust_slope_z(predictor, target)) < Z_LIMIT
        assert abs(np.corrcoef(predictor, target)[0, 1]) < 5.0 / np.sqrt(pairs.height)


def test_martingale_volatility_still_clusters(martingale_market: SyntheticMarket) -> None:
    absolute = np.abs(minute_returns(martingale_market, "NVDA"))
    assert np.corrcoef(absolute[:-1], absolute[1:])[0, 1] > 0.05


@pytest.mark.parametrize(("horizon", "strength"), [(10, 0.2), (30, -0.15)])
def test_planted_mode_plants_the_stated_relation(horizon: int, strength: float) -> None:
    config = SyntheticMarketConfig(
        sessions=600, mode="planted", planted_horizon_bars=horizon, planted_strength=strength
    )
    market = generate_market(config, seed=8)
    pairs = block_return_pairs(market.bars, symbol="NVDA", horizon_bars=horizon)
    predictor, target = pairs["predictor"].to_numpy(), pairs["target"].to_numpy()
    assert abs(robust_slope_z(predictor, target, slope=strength)) < Z_LIMIT
    assert abs(np.corrcoef(predictor, target)[0, 1] - strength) < 5.0 / np.sqrt(pairs.height)
    control = block_return_pairs(market.bars, symbol="MSFT", horizon_bars=horizon)
    assert abs(robust_slope_z(control["predictor"].to_numpy(), control["target"].to_numpy())) < Z_LIMIT


def test_planted_mode_changes_only_the_first_symbol() -> None:
    planted = generate_market(SyntheticMarketConfig(sessions=10, mode="planted"), seed=6).bars
    martingale = generate_market(SyntheticMarketConfig(sessions=10, mode="martingale"), seed=6).bars
    assert planted.filter(pl.col("symbol") == "MSFT").equals(martingale.filter(pl.col("symbol") == "MSFT"))
    assert not planted.filter(pl.col("symbol") == "NVDA").equals(
        martingale.filter(pl.col("symbol") == "NVDA")
    )


def test_planted_on_both_symbols_plants_each_from_its_own_blocks() -> None:
    config = SyntheticMarketConfig(
        sessions=600, mode="planted", planted_symbols="both", planted_horizon_bars=30, planted_strength=0.2
    )
    both = generate_market(config, seed=8).bars
    first = generate_market(config.model_copy(update={"planted_symbols": "first"}), seed=8).bars
    # The first symbol is planted exactly as with "first"; the second gets its own relation.
    assert both.filter(pl.col("symbol") == "NVDA").equals(first.filter(pl.col("symbol") == "NVDA"))
    for symbol in ("NVDA", "MSFT"):
        pairs = block_return_pairs(both, symbol=symbol, horizon_bars=30)
        predictor, target = pairs["predictor"].to_numpy(), pairs["target"].to_numpy()
        assert abs(robust_slope_z(predictor, target, slope=0.2)) < Z_LIMIT, symbol


def test_block_return_pairs_follow_the_stated_blocks() -> None:
    market = generate_market(SyntheticMarketConfig(sessions=2), seed=1)
    pairs = block_return_pairs(market.bars, symbol="NVDA", horizon_bars=10)
    assert pairs.height == 2 * (SESSION_MINUTES // 10 - 1)
    first_session = market.bars.filter(pl.col("symbol") == "NVDA").head(SESSION_MINUTES)
    close, first_open = first_session["close"].to_numpy(), first_session["open"][0]
    assert pairs["predictor"][0] == pytest.approx(np.log(close[9] / first_open))
    assert pairs["target"][0] == pytest.approx(np.log(close[19] / close[9]))
    assert pairs["ts"][0] == first_session["ts"][9]


def test_jumps_fatten_the_tails() -> None:
    def tail_share(jump_probability: float) -> float:
        config = SyntheticMarketConfig(sessions=40, mode="martingale", jump_probability=jump_probability)
        returns = minute_returns(generate_market(config, seed=2), "NVDA")
        scale = 1.4826 * np.median(np.abs(returns))
        return float(np.mean(np.abs(returns) > 6 * scale))

    assert tail_share(0.01) > 3 * tail_share(0.0)


@pytest.mark.parametrize(
    "overrides",
    [
        {"sessions": 0},
        {"start_prices": (0.0, 420.0)},
        {"start_prices": (120.0, -1.0)},
        {"start_prices": (float("nan"), 1.0)},
        {"symbols": ("NVDA", "NVDA")},
        {"symbols": ("", "MSFT")},
        {"mode": "random_walk"},
        {"planted_strength": 1.5},
        {"planted_horizon_bars": 0},
        {"regime_persistence": 1.2},
        {"base_volume": (0.0, 1.0)},
        {"unknown_field": 1},
    ],
)
def test_invalid_config_is_rejected(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SyntheticMarketConfig(**overrides)  # type: ignore[arg-type]


def test_identical_symbols_error_names_the_problem() -> None:
    with pytest.raises(ValueError, match="two different tickers"):
        SyntheticMarketConfig(symbols=("NVDA", "NVDA"))


def test_config_is_frozen() -> None:
    config = SyntheticMarketConfig()
    with pytest.raises(ValidationError):
        config.sessions = 3


def test_negative_seed_is_rejected() -> None:
    with pytest.raises(ValueError, match="seed"):
        generate_market(SyntheticMarketConfig(sessions=1), seed=-1)


def test_block_return_pairs_reject_bad_arguments(year_market: SyntheticMarket) -> None:
    with pytest.raises(ValueError, match="horizon_bars"):
        block_return_pairs(year_market.bars, symbol="NVDA", horizon_bars=0)
    with pytest.raises(ValueError, match="AAPL"):
        block_return_pairs(year_market.bars, symbol="AAPL", horizon_bars=10)


@settings(max_examples=30, deadline=None)
@given(
    coefficient=st.floats(min_value=0.0, max_value=0.999),
    length=st.integers(min_value=1, max_value=1500),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_blocked_ar1_matches_the_recursion(coefficient: float, length: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    innovations = rng.standard_normal((2, length))
    initial = rng.standard_normal(2)
    expected = np.empty_like(innovations)
    previous = initial.copy()
    for index in range(length):
        previous = coefficient * previous + innovations[:, index]
        expected[:, index] = previous
    np.testing.assert_allclose(_ar1(innovations, coefficient, initial), expected, rtol=1e-9, atol=1e-9)
