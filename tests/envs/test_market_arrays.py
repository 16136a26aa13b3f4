import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from envs.market_arrays import MarketArrays, market_arrays, require_finite_features

START = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)  # 09:30 New York


def _bars(timestamps: list[datetime], symbols: tuple[str, ...] = ("NVDA", "MSFT")) -> pl.DataFrame:
    rows = []
    for offset, symbol in enumerate(symbols):
        for index, ts in enumerate(timestamps):
            base = 100.0 * (offset + 1) + index
            rows.append(
                {
                    "ts": ts,
                    "symbol": symbol,
                    "open": base,
                    "high": base + 1.0,
                    "low": base - 1.0,
                    "close": base + 0.5,
                    "volume": 1_000.0 * (offset + 1) + index,
                }
            )
    return pl.DataFrame(rows).with_columns(pl.col("ts").dt.cast_time_unit("ns")).sort("symbol", "ts")


def _features(bars: pl.DataFrame, *, warmup: int = 0) -> pl.DataFrame:
    frame = bars.select(
        "ts",
        "symbol",
        (pl.col("close") * 2.0).alias("alpha"),
        (pl.col("volume") / 1_000.0).alias("beta"),
        pl.lit(0.25).alias("signal"),
    )
    return frame.filter(pl.col("ts").rank("dense").over("symbol") > warmup)


def _minutes(count: int, start: datetime = START) -> list[datetime]:
    return [start + timedelta(minutes=index) for index in range(count)]


def test_rows_hold_ticker_zero_features_then_ticker_one_at_each_decision_bar() -> None:
    bars = _bars(_minutes(6))
    market = market_arrays(bars, _features(bars, warmup=2), feature_columns=["alpha", "beta"])
    assert market.symbols == ("MSFT", "NVDA")
    assert market.feature_names == ("MSFT:alpha", "MSFT:beta", "NVDA:alpha", "NVDA:beta")
    assert market.features.dtype == np.float32 and market.features.flags.c_contiguous
    assert market.features.shape == (4, 4)
    # Warm-up rows (no feature row) are dropped: the first decision bar is the third bar.
    first = bars.filter(pl.col("ts") == START + timedelta(minutes=2)).sort("symbol").to_dicts()
    msft, nvda = first
    np.testing.assert_array_equal(
        market.features[0],
        np.float32([msft["close"] * 2, msft["volume"] / 1e3, nvda["close"] * 2, nvda["volume"] / 1e3]),
    )
    np.testing.assert_array_equal(market.open[0], [msft["open"], nvda["open"]])
    np.testing.assert_array_equal(market.close[0], [msft["close"], nvda["close"]])
    np.testing.assert_array_equal(market.volume[0], [msft["volume"], nvda["volume"]])
    assert market.timestamps[0] == np.datetime64("2024-01-02T14:32", "ns")
    np.testing.assert_array_equal(market.regime_score, np.zeros(4, dtype=np.float32))


def test_symbols_fix_the_ticker_order_and_the_signal_is_just_another_column() -> None:
    bars = _bars(_minutes(3))
    market = market_arrays(
        bars, _features(bars), feature_columns=["signal", "alpha"], symbols=("NVDA", "MSFT")
    )
    assert market.symbols == ("NVDA", "MSFT")
    assert market.feature_names == ("NVDA:signal", "NVDA:alpha", "MSFT:signal", "MSFT:alpha")
    nvda_close = bars.filter(pl.col("symbol") == "NVDA").get_column("close").to_numpy()
    np.testing.assert_array_equal(market.close[:, 0], nvda_close)
    np.testing.assert_array_equal(market.features[:, 0], np.float32(0.25))


def test_sessions_are_new_york_dates() -> None:
    # 00:30 UTC on Jan 3 is 19:30 on Jan 2 in New York: same session as the Jan 2 bars.
    timestamps = [
        *_minutes(2),
        datetime(2024, 1, 3, 0, 30, tzinfo=UTC),
        *_minutes(2, START + timedelta(days=1)),
    ]
    timestamps += _minutes(1, START + timedelta(days=3))
    bars = _bars(timestamps)
    market = market_arrays(bars, _features(bars), feature_columns=["alpha"])
    np.testing.assert_array_equal(market.session_index, [0, 0, 0, 1, 1, 2])
    assert market.session_index.dtype == np.int64


def test_non_utc_input_is_converted_to_utc() -> None:
    bars = _bars(_minutes(3)).with_columns(pl.col("ts").dt.convert_time_zone("America/New_York"))
    market = market_arrays(bars, _features(bars), feature_columns=["alpha"])
    assert market.timestamps[0] == np.datetime64("2024-01-02T14:30", "ns")


def test_regime_score_is_aligned_and_checked() -> None:
    bars = _bars(_minutes(4))
    scores = np.array([0.1, -0.2, 0.3, 0.0])
    market = market_arrays(bars, _features(bars), feature_columns=["alpha"], regime_score=scores)
    np.testing.assert_array_equal(market.regime_score, scores.astype(np.float32))
    assert market.regime_score.dtype == np.float32
    with pytest.raises(ValueError, match=r"one value per decision bar: shape \(4,\), got \(3,\)"):
        market_arrays(bars, _features(bars), feature_columns=["alpha"], regime_score=scores[:3])
    replaced = market.with_regime_score(np.ones(4))
    np.testing.assert_array_equal(replaced.regime_score, np.ones(4, dtype=np.float32))
    np.testing.assert_array_equal(market.regime_score, scores.astype(np.float32))
    with pytest.raises(ValueError, match="regime_score at bar 1"):
        market.with_regime_score(np.array([0.0, np.nan, 0.0, 0.0]))


def test_a_feature_row_without_a_bar_is_an_error() -> None:
    bars = _bars(_minutes(4))
    features = _features(bars)
    with pytest.raises(ValueError, match="feature rows have no bar, first"):
        market_arrays(
            bars.filter(pl.col("ts") != START + timedelta(minutes=1)), features, feature_columns=["alpha"]
        )


def test_tickers_on_different_feature_timestamps_is_an_error() -> None:
    bars = _bars(_minutes(4))
    features = _features(bars).filter(
        ~((pl.col("symbol") == "NVDA") & (pl.col("ts") == START + timedelta(minutes=2)))
    )
    with pytest.raises(ValueError, match="1 only for MSFT"):
        market_arrays(bars, features, feature_columns=["alpha"])


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda bars, features: (bars.drop("volume"), features), "bar frame lacks columns \\['volume'\\]"),
        (lambda bars, features: (bars, features.drop("beta")), "feature frame lacks columns \\['beta'\\]"),
        (lambda bars, features: (pl.concat([bars, bars.head(1)]), features), "duplicated \\(ts, symbol\\)"),
        (
            lambda bars, features: (bars, pl.concat([features, features.tail(1)])),
            "feature frame has 2 rows with a duplicated",
        ),
        (
            lambda bars, features: (
                pl.concat([bars, bars.head(1).with_columns(symbol=pl.lit("AAPL"))]),
                features,
            ),
            "exactly two symbols",
        ),
        (
            lambda bars, features: (bars.with_columns(pl.col("ts").dt.replace_time_zone(None)), features),
            "time-zone-aware",
        ),
        (
            lambda bars, features: (bars.with_columns(close=pl.lit(-1.0)), features),
            "close price of MSFT at bar 0",
        ),
        (
            lambda bars, features: (bars.with_columns(volume=pl.lit(None, pl.Float64)), features),
            "volume of MSFT",
        ),
    ],
)
def test_mismatched_input_names_the_problem(change, fragment: str) -> None:  # type: ignore[no-untyped-def]
    bars = _bars(_minutes(3))
    bars, features = change(bars, _features(bars))
    with pytest.raises(ValueError, match=fragment):
        market_arrays(bars, features, feature_columns=["alpha", "beta"])


def test_feature_column_arguments_are_checked() -> None:
    bars = _bars(_minutes(3))
    with pytest.raises(ValueError, match="feature_columns is empty"):
        market_arrays(bars, _features(bars), feature_columns=[])
    with pytest.raises(ValueError, match="duplicates"):
        market_arrays(bars, _features(bars), feature_columns=["alpha", "alpha"])
    with pytest.raises(ValueError, match="symbol 'AAPL' has no bars"):
        market_arrays(bars, _features(bars), feature_columns=["alpha"], symbols=("AAPL", "MSFT"))


def test_require_finite_features_names_bar_timestamp_and_feature() -> None:
    bars = _bars(_minutes(4))
    market = market_arrays(bars, _features(bars), feature_columns=["alpha", "beta"])
    require_finite_features(market)
    broken = market.features.copy()
    broken[2, 3] = np.inf
    with pytest.raises(ValueError, match=r"feature 'NVDA:beta' is not finite at bar 2 \(2024-01-02T14:32:00"):
        require_finite_features(dataclasses.replace(market, features=broken))
    nulls = _features(bars).with_columns(
        alpha=pl.when((pl.col("symbol") == "MSFT") & (pl.col("ts") == START + timedelta(minutes=1)))
        .then(None)
        .otherwise(pl.col("alpha"))
    )
    with_null = market_arrays(bars, nulls, feature_columns=["alpha", "beta"])
    with pytest.raises(ValueError, match=r"feature 'MSFT:alpha' is not finite at bar 1"):
        require_finite_features(with_null)


def test_market_arrays_checks_shapes_and_dtypes_on_construction() -> None:
    bars = _bars(_minutes(3))
    market = market_arrays(bars, _features(bars), feature_columns=["alpha"])
    with pytest.raises(ValueError, match="C-contiguous float32"):
        dataclasses.replace(market, features=market.features.astype(np.float64))
    with pytest.raises(ValueError, match="C-contiguous float32"):
        dataclasses.replace(market, features=np.asfortranarray(np.ones((3, 2), np.float32)[:, ::-1]))
    with pytest.raises(ValueError, match=r"close must be a float64 array of shape \(3, 2\)"):
        dataclasses.replace(market, close=market.close[:2])
    with pytest.raises(ValueError, match="session_index must be non-decreasing"):
        dataclasses.replace(market, session_index=np.array([0, 1, 0], dtype=np.int64))
    with pytest.raises(ValueError, match="feature_names has 1 names for 2"):
        dataclasses.replace(market, feature_names=("x",))
    with pytest.raises(ValueError, match="two different tickers"):
        dataclasses.replace(market, symbols=("A", "A"))
    with pytest.raises(ValueError, match="datetime64"):
        dataclasses.replace(market, timestamps=market.timestamps.astype("datetime64[s]"))
    assert isinstance(market, MarketArrays) and market.bars == 3


def test_regime_scores_from_the_arrays_closes_fit_back_in() -> None:
    from controllers.regime import regime_scores

    bars = _bars(_minutes(30) + _minutes(30, START + timedelta(days=1)))
    market = market_arrays(bars, _features(bars), feature_columns=["alpha"])
    scores = regime_scores(market.close, session_index=market.session_index)
    scored = market.with_regime_score(scores)
    np.testing.assert_array_equal(scored.regime_score, np.asarray(scores, dtype=np.float32))
    assert scored.features is market.features
