"""Bar features for the two-ticker agent: the feature frame of a normalized two-symbol bar frame.

Input is the canonical bar frame (``ts`` bar start, ``symbol``, ``open``, ``high``, ``low``, ``close``,
``volume``) for exactly two symbols, normalized: sorted by symbol then ts, both symbols on the same
timestamps, regular-session bars only. Output is a long frame ``ts``, ``symbol``, then
``feature_names(config)`` (Float64), sorted by symbol then ts, with the warm-up rows dropped.

:func:`build_features` checks that contract, lays the two symbols side by side on one wide frame, applies
the stages of :func:`market.feature_expressions.feature_expressions` (what each feature is, and why no
feature looks ahead, is described there), drops exactly :func:`market.feature_config.warmup_bars` leading
bars of each symbol (the same timestamps for both) and returns the long frame. The feature sets and their
windows are chosen by :class:`market.feature_config.FeatureConfig`.
"""

import numpy as np
import polars as pl

from market.feature_config import FeatureConfig, feature_names, warmup_bars
from market.feature_expressions import feature_expressions, side_column

__all__ = [
    "BAR_COLUMNS",
    "build_features",
]

BAR_COLUMNS: tuple[str, ...] = ("ts", "symbol", "open", "high", "low", "close", "volume")

_PRICE_COLUMNS = ("open", "high", "low", "close")


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
            blocks[side].get_column(column).cast(pl.Float64).alias(side_column(side, column))
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
        .select("ts", *(side_column(side, name) for side in blocks for name in names))
        .collect(engine="in-memory")
    )
    return pl.concat(
        [
            computed.select(
                "ts",
                pl.lit(symbol, dtype=pl.String).alias("symbol"),
                *(pl.col(side_column(side, name)).alias(name) for name in names),
            )
            for side, symbol in (("first", first), ("second", second))
        ]
    )
