"""Tests for market.features: names and shapes per toggle, ranges, a reference loop, no look-ahead, errors.

This file stays whole past 500 lines because its largest part, the plain reference loop every feature is
checked against, belongs to the tests of :func:`market.features.build_features` and to no other module.
"""

import itertools
import math
from datetime import UTC, date, datetime

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from market.calendar import EXCHANGE_TZ, sessions, trading_days
from market.feature_config import FEATURE_SETS, FeatureConfig, feature_names, warmup_bars
from market.feature_expressions import feature_expressions
from market.features import build_features

SYMBOLS = ("MSFT", "NVDA")
# 30-minute bars across the 2024 fall-back DST switch (Nov 3) and the Nov 29 half day.
FIRST_DAY, LAST_DAY = date(2024, 10, 28), date(2024, 12, 3)
BAR_MINUTES = 30


def make_bars(
    *,
    seed: int = 7,
    first_day: date = FIRST_DAY,
    last_day: date = LAST_DAY,
    bar_minutes: int = BAR_MINUTES,
    flat: bool = False,
) -> pl.DataFrame:
    """Canonical bars for two correlated random-walk symbols on the regular-session grid."""
    bounds = sessions(trading_days(first_day, last_day))
    stamps: list[int] = []
    for session_open, session_close in zip(
        bounds["open"].dt.epoch("ns").to_list(), bounds["close"].dt.epoch("ns").to_list(), strict=True
    ):
        stamps.extend(range(session_open, session_close, bar_minutes * 60_000_000_000))
    count = len(stamps)
    rng = np.random.default_rng(seed)
    common = rng.normal(0.0, 2e-3, count)
    frames = []
    for symbol, start in zip(SYMBOLS, (400.0, 130.0), strict=True):
        if flat:
            close = np.full(count, start)
            open_, high, low = close.copy(), close.copy(), close.copy()
        else:
            moves = 0.7 * common + 0.7 * rng.normal(0.0, 2e-3, count)
            close = start * np.exp(np.cumsum(moves + rng.normal(0.0, 1e-3, count)))
            open_ = close * np.exp(-moves)
            high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 1e-3, count)))
            low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 1e-3, count)))
        frames.append(
            pl.DataFrame(
                {
                    "ts": stamps,
                    "symbol": symbol,
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": rng.lognormal(9.0, 1.0, count),
                }
            )
        )
    return pl.concat(frames).with_columns(pl.col("ts").cast(pl.Datetime("ns")).dt.replace_time_zone("UTC"))


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return make_bars()


@pytest.fixture(scope="module")
def features(bars: pl.DataFrame) -> pl.DataFrame:
    return build_features(bars)


def _configs_by_toggles() -> list[FeatureConfig]:
    configs = []
    for flags in itertools.product((False, True), repeat=len(FEATURE_SETS)):
        if any(flags):
            configs.append(FeatureConfig.model_validate(dict(zip(FEATURE_SETS, flags, strict=True))))
    return configs


# ---------------------------------------------------------------- reference loop


def _wilder(values: np.ndarray, window: int, *, start: int = 0) -> np.ndarray:
    """Wilder's recursive average seeded by values[start], reported from its window-th value."""
    out = np.full(values.size, np.nan)
    average = math.nan
    for i in range(start, values.size):
        average = values[i] if i == start else average + (values[i] - average) / window
        if i - start >= window - 1:
            out[i] = average
    return out


def _trailing(values: np.ndarray, window: int, function) -> np.ndarray:  # type: ignore[no-untyped-def]
    out = np.full(values.size, np.nan)
    for i in range(window - 1, values.size):
        out[i] = function(values[i - window + 1 : i + 1])
    return out


def _ratio(numerator: float, denominator: float, fallback: float) -> float:
    return numerator / denominator if denominator > 0 else fallback


def reference_features(bars: pl.DataFrame, config: FeatureConfig) -> dict[str, dict[str, np.ndarray]]:
    """Every default feature by textbook per-bar loops (NaN during warm-up), per symbol."""
    result: dict[str, dict[str, np.ndarray]] = {}
    by_symbol = {symbol: bars.filter(pl.col("symbol") == symbol) for symbol in SYMBOLS}
    for symbol, other_symbol in (SYMBOLS, SYMBOLS[::-1]):
        own, other = by_symbol[symbol], by_symbol[other_symbol]
        o, h, lo, c = (own[column].to_numpy() for column in ("open", "high", "low", "close"))
        other_open, other_close = other["open"].to_numpy(), other["close"].to_numpy()
        local = [
            datetime.fromtimestamp(ns / 1e9, tz=UTC).astimezone(EXCHANGE_TZ)
            for ns in own["ts"].dt.epoch("ns").to_list()
        ]
        count = len(local)
        starts = np.array([i == 0 or local[i].date() != local[i - 1].date() for i in range(count)])
        previous_close = np.r_[np.nan, c[:-1]]
        returns = np.where(starts, np.log(c / o), np.log(c / previous_close))
        other_returns = np.where(
            starts, np.log(other_close / other_open), np.log(other_close / np.r_[np.nan, other_close[:-1]])
        )
        true_range = np.where(
            starts,
            h - lo,
            np.maximum.reduce([h - lo, np.abs(h - previous_close), np.abs(lo - previous_close)]),
        )
        out: dict[str, np.ndarray] = {}
        for window in config.return_windows:
            out[f"log_return_{window}"] = _trailing(returns, window, np.sum)
        out[f"momentum_{config.momentum_window}"] = (
            np.exp(_trailing(returns, config.momentum_window, np.sum)) - 1
        )
        for window in config.zscore_windows:
            out[f"close_zscore_{window}"] = _trailing(
                c, window, lambda w: _ratio(w[-1] - w.mean(), w.std(ddof=1), 0.0)
            )
        out[f"volatility_{config.volatility_window}"] = _trailing(
            returns, config.volatility_window, lambda w: w.std(ddof=1)
        )
        out[f"atr_{config.atr_window}"] = _wilder(true_range, config.atr_window) / c
        k, n = config.bollinger_std, config.bollinger_window
        out[f"bollinger_width_{n}"] = _trailing(c, n, lambda w, k=k: 2 * k * w.std() / w.mean())
        out[f"bollinger_position_{n}"] = _trailing(
            c, n, lambda w, k=k: _ratio(w[-1] - (w.mean() - k * w.std()), 2 * k * w.std(), 0.5)
        )

        n = config.adx_window
        plus_dm, minus_dm = np.zeros(count), np.zeros(count)
        for i in range(1, count):
            if starts[i]:
                continue
            up, down = h[i] - h[i - 1], lo[i - 1] - lo[i]
            plus_dm[i] = up if up > down and up > 0 else 0.0
            minus_dm[i] = down if down > up and down > 0 else 0.0
        smoothed_range = _wilder(true_range, n)
        plus_di = 100 * _wilder(plus_dm, n) / smoothed_range
        minus_di = 100 * _wilder(minus_dm, n) / smoothed_range
        dx = np.array(
            [
                _ratio(100 * abs(p - m), p + m, 0.0) if not np.isnan(p) else np.nan
                for p, m in zip(plus_di, minus_di, strict=True)
            ]
        )
        out[f"adx_{n}"] = _wilder(dx, n, start=n - 1) / 100

        n = config.slope_window
        log_price = np.cumsum(returns)  # gap-adjusted log price
        slope = _trailing(log_price, n, lambda w, n=n: np.polyfit(np.arange(n), w, 1)[0])
        volatility = _trailing(returns, n, lambda w: w.std(ddof=1))
        out[f"regression_slope_{n}"] = np.array(
            [_ratio(s, v, 0.0) if not np.isnan(s) else np.nan for s, v in zip(slope, volatility, strict=True)]
        )
        out[f"trend_persistence_{config.persistence_window}"] = _trailing(
            returns, config.persistence_window, lambda w: np.mean(np.sign(w) == np.sign(w.sum()))
        )

        change = np.where(starts, c - o, c - previous_close)
        gains = _wilder(np.maximum(change, 0), config.rsi_window)
        losses = _wilder(np.maximum(-change, 0), config.rsi_window)
        out[f"rsi_{config.rsi_window}"] = np.array(
            [_ratio(g, g + x, 0.5) if not np.isnan(g) else np.nan for g, x in zip(gains, losses, strict=True)]
        )
        n = config.stochastic_window
        percent_k = np.full(count, np.nan)
        for i in range(n - 1, count):
            lowest, highest = lo[i - n + 1 : i + 1].min(), h[i - n + 1 : i + 1].max()
            percent_k[i] = _ratio(c[i] - lowest, highest - lowest, 0.5)
        out[f"stochastic_k_{n}"] = percent_k
        out[f"stochastic_d_{config.stochastic_smoothing}"] = _trailing(
            percent_k, config.stochastic_smoothing, np.mean
        )

        n = config.correlation_window
        correlation = np.full(count, np.nan)
        for i in range(n - 1, count):
            x, y = returns[i - n + 1 : i + 1], other_returns[i - n + 1 : i + 1]
            correlation[i] = np.corrcoef(x, y)[0, 1] if x.std() > 0 and y.std() > 0 else 0.0
        out[f"return_correlation_{n}"] = correlation
        spread = np.log(c / other_close)
        out[f"spread_zscore_{config.spread_window}"] = _trailing(
            spread, config.spread_window, lambda w: _ratio(w[-1] - w.mean(), w.std(ddof=1), 0.0)
        )
        n = config.divergence_window
        out[f"return_divergence_{n}"] = _trailing(returns, n, np.sum) - _trailing(other_returns, n, np.sum)

        minutes = np.array([t.hour * 60 + t.minute - 570 for t in local], dtype=float)
        out["session_minute_sin"] = np.sin(2 * np.pi * minutes / config.session_minutes)
        out["session_minute_cos"] = np.cos(2 * np.pi * minutes / config.session_minutes)
        result[symbol] = out
    return result


# ---------------------------------------------------------------- names, shapes, toggles


def test_shape_and_names_for_every_toggle_combination(bars: pl.DataFrame, features: pl.DataFrame) -> None:
    per_set = {
        name: feature_names(FeatureConfig.model_validate({s: s == name for s in FEATURE_SETS}))
        for name in FEATURE_SETS
    }
    bars_per_symbol = bars.height // 2
    for config in _configs_by_toggles():
        result = build_features(bars, config=config)
        expected_names = [n for s in FEATURE_SETS if getattr(config, s) for n in per_set[s]]
        assert feature_names(config) == expected_names
        assert result.columns == ["ts", "symbol", *expected_names]
        assert result.height == 2 * (bars_per_symbol - warmup_bars(config))
        assert all(result.schema[name] == pl.Float64 for name in expected_names)
        # Turning sets off changes which rows survive the warm-up, never a feature's values.
        common = result.join(features.select("ts", "symbol"), on=["ts", "symbol"], how="semi")
        full = features.join(result.select("ts", "symbol"), on=["ts", "symbol"], how="semi")
        assert_frame_equal(common, full.select(common.columns), check_exact=True)


def test_output_sorted_with_schema_of_input(bars: pl.DataFrame, features: pl.DataFrame) -> None:
    assert features.schema["ts"] == pl.Datetime("ns", "UTC")
    assert features.schema["symbol"] == pl.String
    assert features.equals(features.sort("symbol", "ts"))
    assert features["symbol"].unique(maintain_order=True).to_list() == list(SYMBOLS)
    first = features.filter(pl.col("symbol") == "NVDA")["ts"]
    second = features.filter(pl.col("symbol") == "MSFT")["ts"]
    assert first.equals(second)


# ---------------------------------------------------------------- values


def test_no_null_nan_or_infinity(features: pl.DataFrame) -> None:
    values = features.select(feature_names()).to_numpy()
    assert np.isfinite(values).all()
    assert features.null_count().sum_horizontal().item() == 0


def test_values_in_range(features: pl.DataFrame) -> None:
    config = FeatureConfig()

    def values(name: str) -> np.ndarray:
        return features[name].to_numpy()

    for name in ("rsi_14", "stochastic_k_14", "stochastic_d_3", "adx_14", "trend_persistence_20"):
        assert values(name).min() >= 0.0 and values(name).max() <= 1.0, name
    assert values("return_correlation_30").min() >= -1.0 and values("return_correlation_30").max() <= 1.0
    # A population z-score over n values is at most sqrt(n - 1) away from 0.
    bound = math.sqrt(config.bollinger_window - 1) / (2 * config.bollinger_std)
    position = values("bollinger_position_20")
    assert position.min() >= 0.5 - bound and position.max() <= 0.5 + bound
    assert 0.2 < position.mean() < 0.8
    for name in ("volatility_20", "atr_14", "bollinger_width_20"):
        assert values(name).min() >= 0.0, name
    radius = values("session_minute_sin") ** 2 + values("session_minute_cos") ** 2
    np.testing.assert_allclose(radius, 1.0, rtol=0, atol=1e-12)


def test_matches_reference_loop(bars: pl.DataFrame, features: pl.DataFrame) -> None:
    config = FeatureConfig()
    reference = reference_features(bars, config)
    warmup = warmup_bars(config)
    for symbol in SYMBOLS:
        computed = features.filter(pl.col("symbol") == symbol)
        for name in feature_names(config):
            expected = reference[symbol][name][warmup:]
            assert not np.isnan(expected).any(), name
            np.testing.assert_allclose(
                computed[name].to_numpy(), expected, rtol=1e-8, atol=1e-11, err_msg=name
            )


def test_session_start_return_is_intraday_open_to_close(bars: pl.DataFrame, features: pl.DataFrame) -> None:
    joined = features.join(bars, on=["ts", "symbol"])
    local = joined["ts"].dt.convert_time_zone("America/New_York")
    opening = joined.filter((local.dt.hour() == 9) & (local.dt.minute() == 30))
    assert opening.height >= 2 * 20  # many session starts after the warm-up
    np.testing.assert_allclose(
        opening["log_return_1"].to_numpy(), (opening["close"] / opening["open"]).log().to_numpy(), rtol=1e-13
    )
    # Everywhere else the 1-bar return is close-to-close.
    msft = bars.filter(pl.col("symbol") == "MSFT").with_columns(previous=pl.col("close").shift(1))
    inside = features.filter(pl.col("symbol") == "MSFT").join(msft, on=["ts", "symbol"])
    inside = inside.filter(~inside["ts"].is_in(opening["ts"].implode()))
    np.testing.assert_allclose(
        inside["log_return_1"].to_numpy(), (inside["close"] / inside["previous"]).log().to_numpy(), rtol=1e-13
    )


def test_overnight_gap_does_not_move_returns_or_volatility(
    bars: pl.DataFrame, features: pl.DataFrame
) -> None:
    # Multiply every price from the second-to-last session on by 3: a huge overnight gap, nothing else.
    # Features of log returns must not move; RSI and ADX average price differences (Wilder), whose memory
    # mixes the two price levels, so they are checked against the reference loop instead.
    last_days = bars["ts"].dt.convert_time_zone("America/New_York").dt.date().unique().sort()[-2:]
    in_tail = bars["ts"].dt.convert_time_zone("America/New_York").dt.date().is_in(last_days.implode())
    gapped = bars.with_columns(
        [
            pl.when(in_tail).then(pl.col(c) * 3.0).otherwise(pl.col(c))
            for c in ("open", "high", "low", "close")
        ]
    )
    result = build_features(gapped)
    scale_free = [
        "log_return_1",
        "log_return_5",
        "log_return_20",
        "momentum_10",
        "volatility_20",
        "regression_slope_20",
        "trend_persistence_20",
        "return_divergence_5",
        "return_correlation_30",
    ]
    np.testing.assert_allclose(
        result.select(scale_free).to_numpy(), features.select(scale_free).to_numpy(), rtol=1e-9, atol=1e-12
    )
    # A level feature does see the gap.
    assert not np.allclose(result["close_zscore_20"].to_numpy(), features["close_zscore_20"].to_numpy())


def test_flat_prices_hit_every_zero_guard() -> None:
    result = build_features(make_bars(flat=True))
    expected = {
        "log_return_1": 0.0,
        "close_zscore_5": 0.0,
        "close_zscore_20": 0.0,
        "volatility_20": 0.0,
        "atr_14": 0.0,
        "bollinger_width_20": 0.0,
        "bollinger_position_20": 0.5,
        "adx_14": 0.0,
        "regression_slope_20": 0.0,
        "trend_persistence_20": 1.0,  # every return is 0, the sign of the 20-bar return
        "rsi_14": 0.5,
        "stochastic_k_14": 0.5,
        "stochastic_d_3": 0.5,
        "return_correlation_30": 0.0,
        "spread_zscore_60": 0.0,
        "return_divergence_5": 0.0,
    }
    for name, value in expected.items():
        assert (result[name] == value).all(), name


# ---------------------------------------------------------------- no look-ahead


@settings(max_examples=25, deadline=None)
@given(cut_fraction=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1), scale=st.floats(0.01, 0.5))
def test_no_look_ahead_under_perturbation_after_cut(cut_fraction: float, seed: int, scale: float) -> None:
    bars = make_bars()
    per_symbol = bars.height // 2
    cut = warmup_bars() + int(cut_fraction * (per_symbol - warmup_bars() - 1))
    cut_ts = bars["ts"][cut]
    rng = np.random.default_rng(seed)
    after = (bars["ts"] > cut_ts).to_numpy()
    changed = {}
    for column in ("open", "high", "low", "close", "volume"):
        factor = np.where(after, np.exp(rng.normal(0.0, scale, bars.height)), 1.0)
        changed[column] = bars[column].to_numpy() * factor
    # Keep the changed bars consistent (low <= open, close <= high): only rows after the cut move.
    changed["high"] = np.maximum.reduce([changed["open"], changed["high"], changed["low"], changed["close"]])
    changed["low"] = np.minimum.reduce([changed["open"], changed["high"], changed["low"], changed["close"]])
    perturbed = bars.with_columns([pl.Series(name, values) for name, values in changed.items()])
    assert not perturbed.equals(bars) or cut == per_symbol - 1

    original = build_features(bars).filter(pl.col("ts") <= cut_ts)
    moved = build_features(perturbed).filter(pl.col("ts") <= cut_ts)
    assert original.height == 2 * (cut - warmup_bars() + 1)
    assert_frame_equal(moved, original, check_exact=True)


@settings(max_examples=15, deadline=None)
@given(cut_fraction=st.floats(0.0, 1.0))
def test_features_of_a_prefix_equal_the_full_run_up_to_its_end(cut_fraction: float) -> None:
    bars = make_bars()
    per_symbol = bars.height // 2
    keep = warmup_bars() + 1 + int(cut_fraction * (per_symbol - warmup_bars() - 1))
    prefix = pl.concat([bars.slice(0, keep), bars.slice(per_symbol, keep)])
    full = build_features(bars)
    truncated = build_features(prefix)
    assert_frame_equal(truncated, full.filter(pl.col("ts") <= prefix["ts"][keep - 1]), check_exact=True)


# ---------------------------------------------------------------- warm-up, determinism


@pytest.mark.parametrize(
    "config",
    [
        FeatureConfig(),
        *(FeatureConfig.model_validate({s: s == n for s in FEATURE_SETS}) for n in FEATURE_SETS),
    ],
)
def test_warmup_drop_is_exact(bars: pl.DataFrame, config: FeatureConfig) -> None:
    warmup = warmup_bars(config)
    per_symbol = bars.height // 2
    names = feature_names(config)
    result = build_features(bars, config=config)
    columns = {"ts": bars["ts"].slice(0, per_symbol)}
    for index, side in enumerate(("first", "second")):
        block = bars.slice(index * per_symbol, per_symbol)
        columns.update({f"{side}.{column}": block[column] for column in ("open", "high", "low", "close")})
    wide = pl.DataFrame(columns)
    for stage in feature_expressions(config):
        wide = wide.with_columns(stage)
    for side, symbol in zip(("first", "second"), SYMBOLS, strict=True):
        side_columns = [f"{side}.{name}" for name in names]
        undefined = wide.select(pl.any_horizontal(pl.col(side_columns).is_null())).to_series()
        # Row warmup - 1 still has an undefined feature (nothing is dropped needlessly); none after it does.
        if warmup > 0:
            assert undefined[warmup - 1]
        assert not undefined.slice(warmup).any()
        kept = result.filter(pl.col("symbol") == symbol)
        assert kept["ts"][0] == wide["ts"][warmup]
        expected = wide.slice(warmup).select(
            "ts", *(pl.col(c).alias(n) for c, n in zip(side_columns, names, strict=True))
        )
        assert_frame_equal(kept.drop("symbol"), expected, check_exact=True)


def test_deterministic_and_does_not_mutate_input(bars: pl.DataFrame) -> None:
    before = bars.clone()
    first = build_features(bars)
    second = build_features(bars)
    assert_frame_equal(first, second, check_exact=True)
    assert_frame_equal(bars, before, check_exact=True)


# ---------------------------------------------------------------- input errors


def _swap_rows(frame: pl.DataFrame, first: int, second: int) -> pl.DataFrame:
    order = list(range(frame.height))
    order[first], order[second] = order[second], order[first]
    return frame[order]


def _bad_frames(bars: pl.DataFrame) -> list[tuple[str, pl.DataFrame, str]]:
    per_symbol = bars.height // 2
    msft = bars.filter(pl.col("symbol") == "MSFT")
    return [
        ("missing column", bars.drop("volume"), "lacks column"),
        ("one symbol", msft, "exactly two symbols"),
        (
            "three symbols",
            pl.concat([bars, msft.with_columns(symbol=pl.lit("AMD"))]).sort("symbol", "ts"),
            "exactly two symbols",
        ),
        ("unequal counts", bars.slice(1), "not aligned"),
        (
            "different timestamps",
            bars.with_columns(
                ts=pl.when(pl.int_range(pl.len()) == per_symbol + 5)
                .then(pl.col("ts") + pl.duration(minutes=1))
                .otherwise(pl.col("ts"))
            ),
            "not aligned",
        ),
        (
            "symbols in reverse order",
            pl.concat([bars.slice(per_symbol), bars.slice(0, per_symbol)]),
            "not sorted",
        ),
        (
            "ts out of order",
            _swap_rows(_swap_rows(bars, 3, 4), per_symbol + 3, per_symbol + 4),
            "strictly increasing",
        ),
        ("naive ts", bars.with_columns(pl.col("ts").dt.replace_time_zone(None)), "time-zone-aware"),
        ("text prices", bars.with_columns(pl.col("close").cast(pl.String)), "numeric"),
        (
            "zero price",
            bars.with_columns(
                pl.when(pl.int_range(pl.len()) == 9).then(0.0).otherwise(pl.col("low")).alias("low")
            ),
            "positive",
        ),
        (
            "null price",
            bars.with_columns(
                pl.when(pl.int_range(pl.len()) == 9).then(None).otherwise(pl.col("open")).alias("open")
            ),
            "positive",
        ),
        (
            "nan price",
            bars.with_columns(
                pl.when(pl.int_range(pl.len()) == 9)
                .then(float("nan"))
                .otherwise(pl.col("high"))
                .alias("high")
            ),
            "positive",
        ),
        ("too few bars", pl.concat([bars.slice(0, 59), bars.slice(per_symbol, 59)]), "more than 59 bars"),
        ("empty", bars.clear(), "exactly two symbols"),
        ("one row", bars.head(1), "exactly two symbols"),
    ]


@pytest.mark.parametrize("case", range(15))
def test_bad_input_raises_clear_error(bars: pl.DataFrame, case: int) -> None:
    cases = _bad_frames(bars)
    assert len(cases) == 15
    _label, frame, message = cases[case]
    with pytest.raises(ValueError, match=message):
        build_features(frame)


def test_just_enough_bars_give_one_row_per_symbol(bars: pl.DataFrame) -> None:
    per_symbol = bars.height // 2
    keep = warmup_bars() + 1
    result = build_features(pl.concat([bars.slice(0, keep), bars.slice(per_symbol, keep)]))
    assert result.height == 2
    assert result["symbol"].to_list() == list(SYMBOLS)


def test_time_zone_of_input_does_not_change_values(bars: pl.DataFrame, features: pl.DataFrame) -> None:
    local = bars.with_columns(pl.col("ts").dt.convert_time_zone("America/New_York"))
    result = build_features(local)
    assert result.schema["ts"] == pl.Datetime("ns", "America/New_York")
    assert_frame_equal(result.drop("ts"), features.drop("ts"), check_exact=True)
