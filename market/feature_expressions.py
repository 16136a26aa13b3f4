"""Polars expressions of the bar features: each set of :class:`~market.feature_config.FeatureConfig`.

Feature sets (names shown for the default windows):

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

Wilder averages are ``ewm_mean(alpha=1/n, adjust=False)`` seeded by the first value (the warm-up each feature
needs is counted in :mod:`market.feature_config`). Divisions are guarded: a zero range in the stochastic or
zero gains and losses in RSI give 0.5, a zero standard deviation in a z-score, slope or correlation gives 0,
a zero Bollinger band gives position 0.5; past the warm-up the features hold no null, NaN or infinity.

No look-ahead: every feature at bar t is computed from bars at or before t only (trailing windows,
recursive averages run forward, no centring, no backward fill, no full-sample statistics).

Layout: as both symbols share their timestamps, the features are computed on one wide frame (one row per
ts, a column set per symbol) rather than with ``.over("symbol")``: each symbol's features read only its own
columns, which is exactly the per-symbol computation, while the cross-asset features read the other
symbol's columns in the same row, and the shared work (session starts, time features, the symmetric
correlation, the antisymmetric spread z-score) is done once. :func:`feature_expressions` returns the stages
of that computation; :func:`market.features.build_features` applies them and returns the long frame.
"""

import math
from collections.abc import Callable

import polars as pl

from market.feature_config import FeatureConfig

__all__ = [
    "feature_expressions",
    "side_column",
]

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


def side_column(side: str, name: str) -> str:
    """Column ``name`` of ``side`` (``"first"`` or ``"second"``) in the wide frame: ``"<side>.<name>"``."""
    return f"{side}.{name}"


def feature_expressions(config: FeatureConfig = FeatureConfig()) -> list[list[pl.Expr]]:
    """Stages of expressions computing both symbols' features side by side, warm-up rows included (as nulls).

    Apply them in order with ``with_columns`` to a wide frame of the two symbols on their common, sorted
    timestamps: ``ts`` plus ``first.open``, ``first.high``, ``first.low``, ``first.close`` and the same four
    ``second.*`` columns (Float64). The stages add ``first.<feature>`` and ``second.<feature>`` for every
    name in ``feature_names(config)``; the other added columns are intermediates (``_`` after the prefix).
    Each side's features read only its own columns, except the cross-asset ones, which read the other
    side at the same row. :func:`market.features.build_features` does this and returns the long frame
    without warm-up.
    """
    plan = _Plan(stage_count=7)
    session_date = (pl.col("ts").dt.epoch("ns") - _SESSION_DATE_SHIFT_NS) // _NANOSECONDS_PER_DAY
    starts = plan.add(_STARTS, "_session_start", (session_date != session_date.shift(1)).fill_null(True))

    def one_bar_return(side: str) -> pl.Expr:
        # Measured from the previous close, or at a session start from the bar's own open: the overnight
        # gap never enters a return.
        close = pl.col(side_column(side, "close"))
        reference = plan.add(
            _REFERENCES,
            side_column(side, "_reference"),
            pl.when(starts).then(pl.col(side_column(side, "open"))).otherwise(close.shift(1)),
        )
        return plan.add(_PER_BAR, side_column(side, "_return"), (close / reference).log())

    def return_sum(side: str, window: int) -> pl.Expr:
        if window == 1:
            return one_bar_return(side)
        return plan.add(
            _WINDOWS, side_column(side, f"_return_sum_{window}"), _window_sum(one_bar_return(side), window)
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
            plan.add(_SMOOTHED, side_column(side, "session_minute_sin"), sine)
            plan.add(_SMOOTHED, side_column(side, "session_minute_cos"), cosine)
    return [list(stage.values()) for stage in plan.stages if stage]


_ReturnSum = Callable[[str, int], pl.Expr]


def _add_side_features(
    plan: _Plan, config: FeatureConfig, *, side: str, starts: pl.Expr, return_sum: _ReturnSum
) -> None:
    """Register one side's price, volatility, trend and oscillator features."""
    if not (config.price or config.volatility or config.trend or config.oscillators):
        return
    high, low, close = (pl.col(side_column(side, column)) for column in ("high", "low", "close"))
    reference = pl.col(side_column(side, "_reference"))
    return_1 = return_sum(side, 1)

    def feature(stage: int, name: str, expression: pl.Expr) -> pl.Expr:
        return plan.add(stage, side_column(side, name), expression)

    def intermediate(stage: int, name: str, expression: pl.Expr) -> pl.Expr:
        return plan.add(stage, side_column(side, f"_{name}"), expression)

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
    plan.add(_SMOOTHED, side_column(side, f"return_correlation_{window}"), correlation)

    # The log spread of "second" is minus that of "first", and so is its z-score (exactly, in floating point).
    window = config.spread_window
    spread = plan.add(
        _PER_BAR,
        "_log_spread",
        (pl.col(side_column("first", "close")) / pl.col(side_column("second", "close"))).log(),
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
        side_column(side, f"spread_zscore_{window}"),
        spread_zscore if side == "first" else -spread_zscore,
    )

    window = config.divergence_window
    plan.add(
        _RATIOS,
        side_column(side, f"return_divergence_{window}"),
        return_sum(side, window) - return_sum(other_side, window),
    )
