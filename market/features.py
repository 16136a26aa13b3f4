"""Bar features for the two-ticker agent: a switchboard of feature sets, computed with polars, no look-ahead.

Input is the canonical bar frame (``ts`` bar start, ``symbol``, ``open``, ``high``, ``low``, ``close``,
``volume``) for exactly two symbols, normalized: sorted by symbol then ts, both symbols on the same
timestamps, regular-session bars only. Output is a long frame ``ts``, ``symbol``, then
``feature_names(config)`` (Float64), sorted by symbol then ts, with the warm-up rows dropped.

Feature sets (toggled by :class:`FeatureConfig` for ablation; names shown for the default windows):

- ``price``: ``log_return_1``/``_5``/``_20`` (gap-free log returns, see below), ``momentum_10``
  (``exp(log_return_10) - 1``), ``close_zscore_5``/``_20`` (close minus its rolling mean over its rolling
  sample standard deviation).
- ``volatility``: ``volatility_20`` (sample std of 1-bar log returns), ``atr_14`` (Wilder average true range
  over close), ``bollinger_width_20`` (band width ``2 * 2 std`` over the middle band, with the population
  std as Bollinger defines it) and ``bollinger_position_20`` (``(close - lower) / (upper - lower)``; 0.5
  on the middle band; always within ``0.5 ± sqrt(n - 1) / (2 * 2)``).
- ``trend``: ``adx_14`` (Wilder ADX in [0, 1]), ``regression_slope_20`` (OLS slope of the gap-free log price
  over the last 20 bars, per bar, divided by ``volatility`` of the same window: a scale-free trend strength),
  ``trend_persistence_20`` (share in [0, 1] of the last 20 bars whose 1-bar return sign equals the sign of
  the 20-bar return).
- ``oscillators``: ``rsi_14`` (Wilder RSI), ``stochastic_k_14`` (%K), ``stochastic_d_3`` (%D, the 3-bar mean
  of %K). All three are scaled to [0, 1], not [0, 100].
- ``cross_asset``: ``return_correlation_30`` (rolling Pearson correlation of the two tickers' 1-bar
  returns; the same for both symbols), ``spread_zscore_60`` (z-score of ``log(close_self / close_other)``;
  the second symbol's is exactly minus the first's), ``return_divergence_5`` (5-bar return of this symbol
  minus the other's). Each symbol's row uses the other symbol at the same ts.
- ``time``: ``session_minute_sin``/``_cos``: minute of the session (New York exchange time, minutes since
  09:30) on a 390-minute circle. Half days use the same circle; they simply end early.

Overnight gaps (the explicit choice): the 1-bar log return of the first bar of each session is that bar's
intraday ``log(close / open)``, so the overnight gap never enters a return, volatility, momentum, slope,
persistence, RSI, correlation or divergence feature; multi-bar returns are rolling sums of these gap-free
1-bar returns. In the same way the true range of a session's first bar is measured from its open (``high -
low`` for a consistent bar) and its directional movement (ADX) is zero. Rolling windows otherwise run
continuously across sessions. Level-based features (close z-scores, Bollinger bands, stochastic, spread
z-score) compare raw prices and so do see the gap. The first bar of the frame counts as a session start.
A session is a New York calendar date, computed as the UTC date of ``ts - 5 h``; that equals the New York
date for every bar between 01:00 and 24:00 New York time, so it is exact for regular and extended hours.

Warm-up: every feature is null until its windows are full. Rolling windows of ``n`` bars are full at the
``n``-th bar; Wilder averages (``ewm_mean(alpha=1/n, adjust=False)``, seeded by the first value rather
than by the mean of the first ``n`` values as in Wilder's book; the seed's weight decays as
``(1 - 1/n)^k``) are reported from their ``n``-th value; ADX averages DX from DX's first defined bar,
so it needs ``2n - 1`` bars; %D needs ``k + d - 1`` bars. :func:`warmup_bars` is the largest of these
counts minus one over the enabled features, and :func:`build_features` drops exactly that many leading
bars of each symbol (the same timestamps for both). Divisions are guarded: a zero range in the
stochastic or zero gains and losses in RSI give 0.5, a zero standard deviation in a z-score, slope or
correlation gives 0, a zero Bollinger band gives position 0.5; the output holds no null, NaN or infinity.

No look-ahead: every feature at bar t is computed from bars at or before t only (trailing windows,
recursive averages run forward, no centring, no backward fill, no full-sample statistics).

Layout: as both symbols share their timestamps, the features are computed on one wide frame (one row per
ts, a column set per symbol) rather than with ``.over("symbol")``: each symbol's features read only its own
columns, which is exactly the per-symbol computation, while the cross-asset features read the other
symbol's columns in the same row, and the shared work (session starts, time features, the symmetric
correlation, the antisymmetric spread z-score) is done once. The result is returned as the long frame.
"""

import math
from collections.abc import Callable
from typing import Annotated

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "BAR_COLUMNS",
    "FEATURE_SETS",
    "FeatureConfig",
    "build_features",
    "feature_expressions",
    "feature_names",
    "warmup_bars",
]

FEATURE_SETS: tuple[str, ...] = ("price", "volatility", "trend", "oscillators", "cross_asset", "time")
BAR_COLUMNS: tuple[str, ...] = ("ts", "symbol", "open", "high", "low", "close", "volume")

_PRICE_COLUMNS = ("open", "high", "low", "close")
_NANOSECONDS_PER_MINUTE = 60 * 1_000_000_000
_NANOSECONDS_PER_DAY = 1440 * _NANOSECONDS_PER_MINUTE
# New York is UTC-5 (EST) or UTC-4 (EDT); shifting by 5 h maps 01:00-24:00 New York time to its own date.
_SESSION_DATE_SHIFT_NS = 5 * 60 * _NANOSECONDS_PER_MINUTE
_EXCHANGE_TIME_ZONE = "America/New_York"
_SESSION_OPEN_MINUTE = 9 * 60 + 30
# Relative size under which a standard deviation counts as zero (rounding noise of the rolling moments).
_RELATIVE_ZERO = 1e-12
# Absolute size under which a standard deviation of log returns or log spreads counts as zero.
_ABSOLUTE_ZERO = 1e-12

# Windows up to this length are summed directly (see _window_sum).
_DIRECT_SUM_MAX_WINDOW = 32

_PositiveWindow = Annotated[int, Field(gt=0)]
_StdWindow = Annotated[int, Field(ge=2)]


class FeatureConfig(BaseModel):
    """Which feature sets to compute and their window lengths (in bars)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    price: bool = Field(default=True, description="Gap-free log returns, momentum and close z-scores.")
    volatility: bool = Field(
        default=True, description="Rolling volatility, ATR and Bollinger width/position."
    )
    trend: bool = Field(default=True, description="ADX, normalized regression slope and trend persistence.")
    oscillators: bool = Field(default=True, description="RSI and stochastic %K/%D, scaled to [0, 1].")
    cross_asset: bool = Field(
        default=True,
        description="Return correlation, spread z-score and return divergence vs the other symbol.",
    )
    time: bool = Field(default=True, description="Minute of the session (New York time) as sine and cosine.")

    return_windows: tuple[_PositiveWindow, ...] = Field(
        default=(1, 5, 20), description="Bars summed into each gap-free log return feature."
    )
    momentum_window: _PositiveWindow = Field(default=10, description="Bars of the momentum (rate of change).")
    zscore_windows: tuple[_StdWindow, ...] = Field(
        default=(5, 20), description="Bars of each rolling z-score of the close."
    )
    volatility_window: _StdWindow = Field(default=20, description="Bars of the rolling std of 1-bar returns.")
    atr_window: _PositiveWindow = Field(default=14, description="Wilder smoothing length of the true range.")
    bollinger_window: _StdWindow = Field(default=20, description="Bars of the Bollinger middle band and std.")
    bollinger_std: float = Field(default=2.0, gt=0, description="Band half-width in population stds.")
    adx_window: _PositiveWindow = Field(
        default=14, description="Wilder smoothing length of DM and of DX (ADX)."
    )
    slope_window: _StdWindow = Field(default=20, description="Bars of log price in the rolling OLS slope.")
    persistence_window: _PositiveWindow = Field(default=20, description="Bars counted for trend persistence.")
    rsi_window: _PositiveWindow = Field(
        default=14, description="Wilder smoothing length of gains and losses."
    )
    stochastic_window: _PositiveWindow = Field(
        default=14, description="Bars of the stochastic high-low range."
    )
    stochastic_smoothing: _PositiveWindow = Field(default=3, description="Bars of %K averaged into %D.")
    correlation_window: _StdWindow = Field(default=30, description="Bars of the rolling return correlation.")
    spread_window: _StdWindow = Field(default=60, description="Bars of the rolling log-spread z-score.")
    divergence_window: _PositiveWindow = Field(default=5, description="Bars of the returns compared.")
    session_minutes: _PositiveWindow = Field(
        default=390, description="Length of the circle the session minute is mapped onto."
    )

    @field_validator("return_windows", "zscore_windows")
    @classmethod
    def _distinct_windows(cls, windows: tuple[int, ...]) -> tuple[int, ...]:
        if not windows:
            message = "give at least one window"
            raise ValueError(message)
        if len(set(windows)) != len(windows):
            message = f"windows must be distinct, got {windows}"
            raise ValueError(message)
        return windows

    @model_validator(mode="after")
    def _some_set_enabled(self) -> "FeatureConfig":
        if not any(getattr(self, name) for name in FEATURE_SETS):
            message = f"all feature sets are disabled; enable at least one of {', '.join(FEATURE_SETS)}"
            raise ValueError(message)
        return self


def _enabled_features(config: FeatureConfig) -> list[tuple[str, int]]:
    """(name, warm-up bars) of every enabled feature, in output order."""
    features: list[tuple[str, int]] = []
    if config.price:
        features += [(f"log_return_{n}", n - 1) for n in config.return_windows]
        features.append((f"momentum_{config.momentum_window}", config.momentum_window - 1))
        features += [(f"close_zscore_{n}", n - 1) for n in config.zscore_windows]
    if config.volatility:
        features += [
            (f"volatility_{config.volatility_window}", config.volatility_window - 1),
            (f"atr_{config.atr_window}", config.atr_window - 1),
            (f"bollinger_width_{config.bollinger_window}", config.bollinger_window - 1),
            (f"bollinger_position_{config.bollinger_window}", config.bollinger_window - 1),
        ]
    if config.trend:
        features += [
            (f"adx_{config.adx_window}", 2 * config.adx_window - 2),
            (f"regression_slope_{config.slope_window}", config.slope_window - 1),
            (f"trend_persistence_{config.persistence_window}", config.persistence_window - 1),
        ]
    if config.oscillators:
        k, d = config.stochastic_window, config.stochastic_smoothing
        features += [
            (f"rsi_{config.rsi_window}", config.rsi_window - 1),
            (f"stochastic_k_{k}", k - 1),
            (f"stochastic_d_{d}", k + d - 2),
        ]
    if config.cross_asset:
        features += [
            (f"return_correlation_{config.correlation_window}", config.correlation_window - 1),
            (f"spread_zscore_{config.spread_window}", config.spread_window - 1),
            (f"return_divergence_{config.divergence_window}", config.divergence_window - 1),
        ]
    if config.time:
        features += [("session_minute_sin", 0), ("session_minute_cos", 0)]
    return features


def feature_names(config: FeatureConfig = FeatureConfig()) -> list[str]:
    """Names of the feature columns ``build_features`` returns for ``config``, in their (stable) order."""
    return [name for name, _ in _enabled_features(config)]


def warmup_bars(config: FeatureConfig = FeatureConfig()) -> int:
    """Leading bars per symbol that ``build_features`` drops: some enabled feature is undefined there."""
    return max(warmup for _, warmup in _enabled_features(config))


def _wilder(expression: pl.Expr, window: int) -> pl.Expr:
    """Wilder's smoothing (alpha = 1/window, seeded by the first value), null before ``window`` values."""
    return expression.ewm_mean(alpha=1.0 / window, adjust=False, min_samples=window)


def _guarded_ratio(
    numerator: pl.Expr, denominator: pl.Expr, *, zero_below: pl.Expr | float, fallback: float
) -> pl.Expr:
    """``numerator / denominator``; ``fallback`` where the denominator is not above ``zero_below``.

    A null denominator stays null (a window not yet full), which a plain ``when/otherwise`` would turn into
    the fallback.
    """
    return (
        pl.when(denominator > zero_below)
        .then(numerator / denominator)
        .when(denominator.is_not_null())
        .then(pl.lit(fallback))
        .otherwise(None)
    )


def _slope_weights(window: int) -> list[float]:
    """Weights turning the last ``window - 1`` one-bar returns into the OLS slope over ``window`` log prices.

    With x = 0..window-1 and y the log price, slope = Σ (x - x̄) y / Σ (x - x̄)². Writing y as a sum of
    returns, the return entering at position j gets the weight Σ_{k >= j} (x_k - x̄) / Σ (x - x̄)².
    """
    centre = (window - 1) / 2
    squares = window * (window * window - 1) / 12
    return [sum(k - centre for k in range(j, window)) / squares for j in range(1, window)]


class _Plan:
    """Named expressions grouped into ``with_columns`` stages; a name registered twice is computed once."""

    def __init__(self, stage_count: int) -> None:
        self.stages: list[dict[str, pl.Expr]] = [{} for _ in range(stage_count)]

    def add(self, stage: int, name: str, expression: pl.Expr) -> pl.Expr:
        """Register ``expression`` as column ``name`` in ``stage`` (first one wins); return that column."""
        self.stages[stage].setdefault(name, expression.alias(name))
        return pl.col(name)


# Stages, each one ``with_columns`` pass reading only earlier stages: session starts | reference prices |
# per-bar quantities | products of per-bar quantities | rolling windows and Wilder averages | ratios |
# smoothed ratios.
_STARTS, _REFERENCES, _PER_BAR, _PRODUCTS, _WINDOWS, _RATIOS, _SMOOTHED = range(7)


def _session_minute(starts: pl.Expr) -> pl.Expr:
    """Minutes since 09:30 New York time, from each session's UTC offset read at its first bar.

    A session never spans a daylight-saving switch (02:00 local), so converting only the first bar of each
    session to New York time and carrying its offset forward is exact, and far cheaper than converting
    every bar.
    """
    first_bars = pl.col("ts").filter(starts)
    offsets_ns = first_bars.dt.convert_time_zone(_EXCHANGE_TIME_ZONE).dt.replace_time_zone(None).dt.epoch(
        "ns"
    ) - first_bars.dt.epoch("ns")
    session_index = starts.cast(pl.Int64).cum_sum() - 1
    local_ns_of_day = (pl.col("ts").dt.epoch("ns") + offsets_ns.gather(session_index)) % _NANOSECONDS_PER_DAY
    return local_ns_of_day.cast(pl.Float64) / _NANOSECONDS_PER_MINUTE - _SESSION_OPEN_MINUTE


def _window_sum(expression: pl.Expr, window: int) -> pl.Expr:
    """Trailing sum over ``window`` bars of a null-free expression.

    Short windows use polars' weighted kernel (all-ones weights), which sums each window directly: on
    1M values (polars 2.1) it was faster than the running-sum kernel up to ~32 bars (3x at 5 bars), and
    it carries no rounding drift from earlier windows. The weighted kernel rejects nulls, hence the
    null-free input.
    """
    if window <= _DIRECT_SUM_MAX_WINDOW:
        return expression.rolling_sum(window, weights=[1.0] * window)
    return expression.rolling_sum(window)


def _window_mean(expression: pl.Expr, window: int) -> pl.Expr:
    """Trailing mean over ``window`` bars of a null-free expression (see :func:`_window_sum`)."""
    if window <= _DIRECT_SUM_MAX_WINDOW:
        return expression.rolling_sum(window, weights=[1.0 / window] * window)
    return expression.rolling_mean(window)


def _name(side: str, name: str) -> str:
    return f"{side}.{name}"


def feature_expressions(config: FeatureConfig = FeatureConfig()) -> list[list[pl.Expr]]:
    """Stages of expressions computing both symbols' features side by side, warm-up rows included (as nulls).

    Apply them in order with ``with_columns`` to a wide frame of the two symbols on their common, sorted
    timestamps: ``ts`` plus ``first.open``, ``first.high``, ``first.low``, ``first.close`` and the same four
    ``second.*`` columns (Float64). The stages add ``first.<feature>`` and ``second.<feature>`` for every
    name in ``feature_names(config)``; the other added columns are intermediates (``_`` after the prefix).
    Each side's features read only its own columns, except the cross-asset ones, which read the other
    side at the same row. :func:`build_features` does this and returns the long frame without warm-up.
    """
    plan = _Plan(stage_count=7)
    session_date = (pl.col("ts").dt.epoch("ns") - _SESSION_DATE_SHIFT_NS) // _NANOSECONDS_PER_DAY
    starts = plan.add(_STARTS, "_session_start", (session_date != session_date.shift(1)).fill_null(True))

    def one_bar_return(side: str) -> pl.Expr:
        # Measured from the previous close, or at a session start from the bar's own open: the overnight
        # gap never enters a return.
        close = pl.col(_name(side, "close"))
        reference = plan.add(
            _REFERENCES,
            _name(side, "_reference"),
            pl.when(starts).then(pl.col(_name(side, "open"))).otherwise(close.shift(1)),
        )
        return plan.add(_PER_BAR, _name(side, "_return"), (close / reference).log())

    def return_sum(side: str, window: int) -> pl.Expr:
        if window == 1:
            return one_bar_return(side)
        return plan.add(
            _WINDOWS, _name(side, f"_return_sum_{window}"), _window_sum(one_bar_return(side), window)
        )

    for side, other_side in (("first", "second"), ("second", "first")):
        _add_side_features(plan, config, side=side, starts=starts, return_sum=return_sum)
        if config.cross_asset:
            _add_cross_asset_features(plan, config, side=side, other_side=other_side, return_sum=return_sum)
        if config.time:
            angle = plan.add(
                _PER_BAR, "_session_angle", _session_minute(starts) * (2.0 * math.pi / config.session_minutes)
            )
            # Both symbols share the timestamps, hence the time features: computed once, aliased per side.
            sine = plan.add(_PRODUCTS, "_session_minute_sin", angle.sin())
            cosine = plan.add(_PRODUCTS, "_session_minute_cos", angle.cos())
            plan.add(_SMOOTHED, _name(side, "session_minute_sin"), sine)
            plan.add(_SMOOTHED, _name(side, "session_minute_cos"), cosine)
    return [list(stage.values()) for stage in plan.stages if stage]


_ReturnSum = Callable[[str, int], pl.Expr]


def _add_side_features(
    plan: _Plan, config: FeatureConfig, *, side: str, starts: pl.Expr, return_sum: _ReturnSum
) -> None:
    """Register one side's price, volatility, trend and oscillator features."""
    if not (config.price or config.volatility or config.trend or config.oscillators):
        return
    high, low, close = (pl.col(_name(side, column)) for column in ("high", "low", "close"))
    reference = pl.col(_name(side, "_reference"))
    return_1 = return_sum(side, 1)

    def feature(stage: int, name: str, expression: pl.Expr) -> pl.Expr:
        return plan.add(stage, _name(side, name), expression)

    def intermediate(stage: int, name: str, expression: pl.Expr) -> pl.Expr:
        return plan.add(stage, _name(side, f"_{name}"), expression)

    def close_mean(window: int) -> pl.Expr:
        return intermediate(_WINDOWS, f"close_mean_{window}", _window_mean(close, window))

    def close_std(window: int) -> pl.Expr:
        return intermediate(_WINDOWS, f"close_std_{window}", close.rolling_std(window))

    def return_std(window: int) -> pl.Expr:
        return intermediate(_WINDOWS, f"return_std_{window}", return_1.rolling_std(window))

    if config.price:
        for window in config.return_windows:
            feature(_RATIOS, f"log_return_{window}", return_sum(side, window))
        momentum = config.momentum_window
        feature(_RATIOS, f"momentum_{momentum}", return_sum(side, momentum).exp() - 1.0)
        for window in config.zscore_windows:
            mean = close_mean(window)
            feature(
                _RATIOS,
                f"close_zscore_{window}",
                _guarded_ratio(
                    close - mean, close_std(window), zero_below=_RELATIVE_ZERO * mean, fallback=0.0
                ),
            )

    if config.volatility:
        feature(_RATIOS, f"volatility_{config.volatility_window}", return_std(config.volatility_window))
        true_range = intermediate(
            _PER_BAR, "true_range", pl.max_horizontal(high, reference) - pl.min_horizontal(low, reference)
        )
        atr = intermediate(_WINDOWS, f"atr_{config.atr_window}", _wilder(true_range, config.atr_window))
        feature(_RATIOS, f"atr_{config.atr_window}", atr / close)
        window = config.bollinger_window
        mean = close_mean(window)
        # Population std = sample std * sqrt((n - 1) / n): sharing the z-score's rolling pass, and derived
        # the same way whatever else is enabled, so values stay identical across ablations.
        half_width = close_std(window) * (math.sqrt((window - 1) / window) * config.bollinger_std)
        feature(_RATIOS, f"bollinger_width_{window}", 2.0 * half_width / mean)
        feature(
            _RATIOS,
            f"bollinger_position_{window}",
            0.5
            + _guarded_ratio(close - mean, 2.0 * half_width, zero_below=_RELATIVE_ZERO * mean, fallback=0.0),
        )

    if config.trend:
        window = config.adx_window
        up_move = high - high.shift(1)
        down_move = low.shift(1) - low
        plus_dm = intermediate(
            _PER_BAR,
            "plus_dm",
            pl.when(~starts & (up_move > down_move) & (up_move > 0)).then(up_move).otherwise(0.0),
        )
        minus_dm = intermediate(
            _PER_BAR,
            "minus_dm",
            pl.when(~starts & (down_move > up_move) & (down_move > 0)).then(down_move).otherwise(0.0),
        )
        # +DI and -DI share the smoothed true range, which cancels in DX = |+DI - -DI| / (+DI + -DI).
        plus_smoothed = intermediate(_WINDOWS, f"plus_dm_{window}", _wilder(plus_dm, window))
        minus_smoothed = intermediate(_WINDOWS, f"minus_dm_{window}", _wilder(minus_dm, window))
        directional_index = intermediate(
            _RATIOS,
            f"dx_{window}",
            _guarded_ratio(
                (plus_smoothed - minus_smoothed).abs(),
                plus_smoothed + minus_smoothed,
                zero_below=0.0,
                fallback=0.0,
            ),
        )
        feature(_SMOOTHED, f"adx_{window}", _wilder(directional_index, window))

        window = config.slope_window
        slope = intermediate(
            _WINDOWS, f"slope_{window}", return_1.rolling_sum(window - 1, weights=_slope_weights(window))
        )
        feature(
            _RATIOS,
            f"regression_slope_{window}",
            _guarded_ratio(slope, return_std(window), zero_below=_ABSOLUTE_ZERO, fallback=0.0),
        )

        window = config.persistence_window
        total = return_sum(side, window)
        rise = intermediate(_PRODUCTS, "rise", (return_1 > 0).cast(pl.Float64))
        fall = intermediate(_PRODUCTS, "fall", (return_1 < 0).cast(pl.Float64))
        rises = intermediate(_WINDOWS, f"rises_{window}", _window_sum(rise, window))
        falls = intermediate(_WINDOWS, f"falls_{window}", _window_sum(fall, window))
        agreeing = (
            pl.when(total > 0).then(rises).when(total < 0).then(falls).otherwise(window - rises - falls)
        )
        feature(_RATIOS, f"trend_persistence_{window}", agreeing / window)

    if config.oscillators:
        window = config.rsi_window
        change = intermediate(_PER_BAR, "change", close - reference)
        gains = intermediate(_WINDOWS, f"gain_{window}", _wilder(change.clip(lower_bound=0.0), window))
        losses = intermediate(_WINDOWS, f"loss_{window}", _wilder((-change).clip(lower_bound=0.0), window))
        feature(_RATIOS, f"rsi_{window}", _guarded_ratio(gains, gains + losses, zero_below=0.0, fallback=0.5))

        window, smoothing = config.stochastic_window, config.stochastic_smoothing
        lowest = intermediate(_WINDOWS, f"lowest_{window}", low.rolling_min(window))
        highest = intermediate(_WINDOWS, f"highest_{window}", high.rolling_max(window))
        percent_k = feature(
            _RATIOS,
            f"stochastic_k_{window}",
            _guarded_ratio(close - lowest, highest - lowest, zero_below=0.0, fallback=0.5),
        )
        feature(_SMOOTHED, f"stochastic_d_{smoothing}", percent_k.rolling_mean(smoothing))


def _add_cross_asset_features(
    plan: _Plan, config: FeatureConfig, *, side: str, other_side: str, return_sum: _ReturnSum
) -> None:
    """Register one side's cross-asset features; the symmetric parts are computed once for both sides."""
    # Correlation is symmetric: the sums are named by the pair, so both sides share them and the result.
    window = config.correlation_window
    x, y = return_sum("first", 1), return_sum("second", 1)
    sums = {
        key: plan.add(_WINDOWS, f"_correlation_sum_{key}_{window}", _window_sum(column, window))
        for key, column in (
            ("x", x),
            ("y", y),
            ("xy", plan.add(_PRODUCTS, "_return_product", x * y)),
            ("xx", plan.add(_PRODUCTS, "first._return_square", x * x)),
            ("yy", plan.add(_PRODUCTS, "second._return_square", y * y)),
        )
    }
    covariance = sums["xy"] - sums["x"] * sums["y"] / window
    x_variance = (sums["xx"] - sums["x"] * sums["x"] / window).clip(lower_bound=0.0)
    y_variance = (sums["yy"] - sums["y"] * sums["y"] / window).clip(lower_bound=0.0)
    # A variance within rounding noise of the raw second moment counts as zero.
    defined = (x_variance > _RELATIVE_ZERO * sums["xx"]) & (y_variance > _RELATIVE_ZERO * sums["yy"])
    correlation = plan.add(
        _RATIOS,
        f"_return_correlation_{window}",
        pl.when(defined)
        .then((covariance / (x_variance * y_variance).sqrt()).clip(-1.0, 1.0))
        .when(covariance.is_not_null())
        .then(0.0)
        .otherwise(None),
    )
    plan.add(_SMOOTHED, _name(side, f"return_correlation_{window}"), correlation)

    # The log spread of "second" is minus that of "first", and so is its z-score (exactly, in floating point).
    window = config.spread_window
    spread = plan.add(
        _PER_BAR, "_log_spread", (pl.col(_name("first", "close")) / pl.col(_name("second", "close"))).log()
    )
    spread_mean = plan.add(_WINDOWS, f"_spread_mean_{window}", _window_mean(spread, window))
    spread_std = plan.add(_WINDOWS, f"_spread_std_{window}", spread.rolling_std(window))
    zero_below = pl.max_horizontal(_RELATIVE_ZERO * spread_mean.abs(), pl.lit(_ABSOLUTE_ZERO))
    spread_zscore = plan.add(
        _RATIOS,
        f"_spread_zscore_{window}",
        _guarded_ratio(spread - spread_mean, spread_std, zero_below=zero_below, fallback=0.0),
    )
    plan.add(
        _SMOOTHED,
        _name(side, f"spread_zscore_{window}"),
        spread_zscore if side == "first" else -spread_zscore,
    )

    window = config.divergence_window
    plan.add(
        _RATIOS,
        _name(side, f"return_divergence_{window}"),
        return_sum(side, window) - return_sum(other_side, window),
    )


def _describe_symbols(symbols: pl.Series) -> str:
    counts = symbols.value_counts(sort=True).head(5)
    listed = ", ".join(f"{row[0]!r} ({row[1]} bars)" for row in counts.iter_rows())
    return f"{symbols.n_unique()} symbol(s): {listed}" if listed else "no rows"


def _two_blocks(symbols: pl.Series) -> tuple[str, str] | None:
    """The two symbols when ``symbols`` is one block of each, of equal length; otherwise None."""
    height = symbols.len()
    if height == 0 or height % 2:
        return None
    first, last = symbols[0], symbols[-1]
    if not isinstance(first, str) or not isinstance(last, str) or first == last:
        return None
    half = height // 2
    if not ((symbols.slice(0, half) == first).all() and (symbols.slice(half) == last).all()):
        return None
    return first, last


def _validate(bars: pl.DataFrame, config: FeatureConfig) -> tuple[str, str, int]:
    """Check the bar frame's contract; return the two symbols (in order) and the bars per symbol."""
    missing = [column for column in BAR_COLUMNS if column not in bars.columns]
    if missing:
        message = f"bar frame lacks column(s) {missing}; expected {list(BAR_COLUMNS)}"
        raise ValueError(message)
    ts_type = bars.schema["ts"]
    if not isinstance(ts_type, pl.Datetime) or ts_type.time_zone is None:
        message = (
            "column 'ts' must be a time-zone-aware Datetime (canonical: Datetime('ns', 'UTC')), "
            f"got {ts_type}"
        )
        raise ValueError(message)
    symbol_type = bars.schema["symbol"]
    if not (symbol_type == pl.String or isinstance(symbol_type, (pl.Categorical, pl.Enum))):
        message = f"column 'symbol' must hold strings, got {bars.schema['symbol']}"
        raise ValueError(message)
    for column in _PRICE_COLUMNS:
        if not bars.schema[column].is_numeric():
            message = f"column {column!r} must be numeric (Float64), got {bars.schema[column]}"
            raise ValueError(message)

    symbols = bars.get_column("symbol").cast(pl.String)
    half = bars.height // 2
    blocks = _two_blocks(symbols)
    if blocks is None:
        unique = symbols.n_unique() if bars.height else 0
        if unique != 2:
            message = f"features need bars of exactly two symbols, got {_describe_symbols(symbols)}"
            raise ValueError(message)
        message = (
            "the two symbols are not aligned: each needs the same number of bars, sorted by symbol then ts; "
            f"got {_describe_symbols(symbols)}"
        )
        raise ValueError(message)
    first, last = blocks
    if first > last:
        message = f"bar frame is not sorted by symbol: {first!r} comes before {last!r}"
        raise ValueError(message)

    stamps = bars.get_column("ts").dt.epoch("ns").to_numpy()
    own, other = stamps[:half], stamps[half:]
    if not np.array_equal(own, other):
        position = int(np.flatnonzero(own != other)[0])
        message = (
            f"the two symbols are not aligned: bar {position} is at {bars['ts'][position]} for {first!r} "
            f"but at {bars['ts'][half + position]} for {last!r}; both need the same timestamps"
        )
        raise ValueError(message)
    if half > 1 and not bool(np.all(own[1:] > own[:-1])):
        position = int(np.flatnonzero(own[1:] <= own[:-1])[0]) + 1
        message = (
            "bars are not strictly increasing in ts within a symbol "
            f"(bar {position} at {bars['ts'][position]})"
        )
        raise ValueError(message)

    prices = bars.select(_PRICE_COLUMNS).cast(pl.Float64)
    invalid = prices.select(
        [
            (pl.col(column).is_null() | ~pl.col(column).is_finite() | (pl.col(column) <= 0)).sum()
            for column in _PRICE_COLUMNS
        ]
    ).row(0)
    if any(invalid):
        counts = ", ".join(
            f"{column}: {count}" for column, count in zip(_PRICE_COLUMNS, invalid, strict=True) if count
        )
        message = f"prices must be finite and positive; null, non-finite or non-positive values in {counts}"
        raise ValueError(message)

    warmup = warmup_bars(config)
    if half <= warmup:
        message = (
            f"features need more than {warmup} bars per symbol (the warm-up of this configuration), "
            f"got {half}"
        )
        raise ValueError(message)
    return first, last, half


def build_features(bars: pl.DataFrame, *, config: FeatureConfig = FeatureConfig()) -> pl.DataFrame:
    """Compute the enabled feature sets for a normalized two-symbol bar frame.

    Returns a long frame ``ts``, ``symbol``, then ``feature_names(config)`` as Float64, sorted by symbol
    then ts, without the first ``warmup_bars(config)`` bars of each symbol, and free of null, NaN and
    infinity. Raises ``ValueError`` naming the problem when the frame lacks a canonical column, does not
    hold exactly two symbols, the symbols are not on the same timestamps (sorted by symbol then ts), a price
    is missing, non-finite or not positive, or a symbol has no more bars than the warm-up.
    """
    first, second, half = _validate(bars, config)
    names = feature_names(config)
    blocks = {"first": bars.slice(0, half), "second": bars.slice(half, half)}
    wide = pl.DataFrame(
        [blocks["first"].get_column("ts")]
        + [
            blocks[side].get_column(column).cast(pl.Float64).alias(_name(side, column))
            for side in blocks
            for column in _PRICE_COLUMNS
        ]
    )
    frame = wide.lazy()
    for stage in feature_expressions(config):
        frame = frame.with_columns(stage)
    # The in-memory engine: polars' default streaming engine (2.x) was about 2x slower on these stages.
    computed = (
        frame.slice(warmup_bars(config))
        .select("ts", *(_name(side, name) for side in blocks for name in names))
        .collect(engine="in-memory")
    )
    return pl.concat(
        [
            computed.select(
                "ts",
                pl.lit(symbol, dtype=pl.String).alias("symbol"),
                *(pl.col(_name(side, name)).alias(name) for name in names),
            )
            for side, symbol in (("first", first), ("second", second))
        ]
    )
