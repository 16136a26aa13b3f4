"""Normalize loaded bars to the canonical frame, counting every repair.

Repairs, in order: convert timestamps to UTC, sort, drop rows of symbols not asked for, drop exact duplicate
rows, drop bars on non-trading days and outside the regular session (early closes respected), and align the
symbols on their common timestamps. Conflicting rows (same symbol and bar, different values) are not
repaired: they raise :class:`DataQualityError`.

Two real-export repairs, each optional and counted: ``drop_partial_final_session`` drops the last session
when its last bar ends before that session's close (an export taken during the day); ``drop_low_volume_below``
drops every session of a symbol whose total volume is below that share of the median of its previous
``volume_median_sessions`` sessions (a vendor feed change that cuts volume while prices look fine;
:func:`session_volume_ratios`, causal). Both symbols lose the session, so they stay aligned.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from core.errors import DataQualityError
from market.calendar import EXCHANGE_TZ, sessions, trading_days
from market.loading import CANONICAL_COLUMNS, infer_bar_minutes

__all__ = [
    "NormalizedBars",
    "normalize_bars",
    "session_volume_ratios",
    "unaligned_key",
]

_REPAIR_DESCRIPTIONS: dict[str, str] = {
    "converted_to_utc": "timestamps converted to UTC",
    "other_symbols_dropped": "rows of symbols not requested dropped",
    "unsorted_rows": "rows out of time order (sorted)",
    "exact_duplicates_dropped": "exact duplicate rows dropped",
    "non_trading_day_dropped": "bars on non-trading days dropped",
    "outside_session_dropped": "bars outside the regular session dropped",
    "partial_final_session_dropped": "bars of a partial final session (export taken before the close) dropped",
    "low_volume_sessions_dropped": "bars of sessions with volume far below the trailing median dropped",
}
_EXAMPLE_ROWS = 3


def unaligned_key(symbol: str) -> str:
    """Repair key counting ``symbol``'s bars dropped because another symbol has no bar at that time."""
    return f"unaligned_dropped[{symbol}]"


@dataclass(frozen=True)
class NormalizedBars:
    """Canonical bars plus the bar size and a count per repair (every key present, 0 when nothing)."""

    bars: pl.DataFrame
    bar_minutes: int
    repairs: dict[str, int]
    dropped_sessions: tuple[date, ...] = ()
    """Sessions a repair dropped on purpose (low volume): QC does not count them as missing."""

    def repair_lines(self) -> list[str]:
        """One human-readable line per repair, in the order the repairs were made."""
        lines: list[str] = []
        for key, count in self.repairs.items():
            if key.startswith("unaligned_dropped["):
                symbol = key[len("unaligned_dropped[") : -1]
                description = f"{symbol} bars without a matching bar of every other symbol dropped"
            else:
                description = _REPAIR_DESCRIPTIONS.get(key, key)
            lines.append(f"{description}: {count}")
        return lines


def normalize_bars(
    bars: pl.DataFrame,
    *,
    symbols: Sequence[str] | None = None,
    bar_minutes: int | None = None,
    drop_partial_final_session: bool = False,
    drop_low_volume_below: float | None = None,
    volume_median_sessions: int = 20,
) -> NormalizedBars:
    """Normalize a loaded bar frame (see the module docstring for the repairs, in order).

    ``symbols``: the symbols required (others are dropped and counted); None keeps every symbol present.
    ``bar_minutes``: the bar size; None infers it (:func:`market.loading.infer_bar_minutes`).
    Raises :class:`DataQualityError` for missing columns, naive timestamps, a requested symbol with no bars,
    conflicting duplicate rows, or no bars left.
    """
    if bar_minutes is not None and bar_minutes < 1:
        message = f"bar_minutes must be >= 1, got {bar_minutes}"
        raise ValueError(message)
    frame = _canonical_columns(bars)
    if frame.height == 0:
        message = "no bars in the input frame"
        raise DataQualityError(message)
    repairs: dict[str, int] = dict.fromkeys(_REPAIR_DESCRIPTIONS, 0)
    dropped_sessions: tuple[date, ...] = ()

    frame, repairs["converted_to_utc"] = _to_utc(frame)
    wanted = _wanted_symbols(frame, symbols=symbols)
    before = frame.height
    frame = frame.filter(pl.col("symbol").is_in(wanted))
    repairs["other_symbols_dropped"] = before - frame.height

    out_of_order = (pl.col("ts") < pl.col("ts").cum_max().shift(1)).over("symbol")
    repairs["unsorted_rows"] = int(frame.select(out_of_order.sum()).item())
    frame = frame.sort("symbol", "ts", maintain_order=True)

    before = frame.height
    frame = frame.unique(maintain_order=True)
    repairs["exact_duplicates_dropped"] = before - frame.height

    if bar_minutes is None:
        bar_minutes = infer_bar_minutes(frame)
    frame, repairs["non_trading_day_dropped"], repairs["outside_session_dropped"] = _regular_session(
        frame, bar_minutes=bar_minutes
    )
    _raise_for_conflicts(frame)

    frame, unaligned = _align(frame, symbols=wanted)
    repairs.update({unaligned_key(symbol): count for symbol, count in unaligned.items()})
    if drop_partial_final_session:
        frame, repairs["partial_final_session_dropped"] = _drop_partial_final_session(
            frame, bar_minutes=bar_minutes
        )
    if drop_low_volume_below is not None:
        ratios = session_volume_ratios(frame, window=volume_median_sessions)
        low = (
            ratios.filter(pl.col("volume_ratio") < drop_low_volume_below)
            .get_column("session")
            .unique()
            .sort()
        )
        dropped_sessions = tuple(low.to_list())
        before = frame.height
        frame = frame.filter(~_session_of(pl.col("ts")).is_in(low.implode()))
        repairs["low_volume_sessions_dropped"] = before - frame.height
    if frame.height == 0:
        summary = ", ".join(f"{key}={count}" for key, count in repairs.items() if count)
        message = f"no bars left after normalization ({summary})"
        raise DataQualityError(message)
    return NormalizedBars(
        bars=frame.select(CANONICAL_COLUMNS),
        bar_minutes=bar_minutes,
        repairs=repairs,
        dropped_sessions=dropped_sessions,
    )


def _session_of(ts: pl.Expr) -> pl.Expr:
    return ts.dt.convert_time_zone(str(EXCHANGE_TZ)).dt.date()


def _drop_partial_final_session(frame: pl.DataFrame, *, bar_minutes: int) -> tuple[pl.DataFrame, int]:
    """Drop the last session when its last bar ends before the session's (calendar) close."""
    if frame.height == 0:
        return frame, 0
    last_day = frame.select(_session_of(pl.col("ts")).max()).item()
    close = sessions([last_day]).get_column("close")[0]
    last_end = frame.get_column("ts").max() + timedelta(minutes=bar_minutes)  # type: ignore[operator]
    if last_end >= close:
        return frame, 0
    kept = frame.filter(_session_of(pl.col("ts")) != last_day)
    return kept, frame.height - kept.height


def session_volume_ratios(bars: pl.DataFrame, *, window: int = 20) -> pl.DataFrame:
    """Each symbol's session volume over the median of its previous ``window`` sessions (causal).

    Returns ``symbol``, ``session`` (New York date), ``volume``, ``trailing_median``, ``volume_ratio``;
    sessions with fewer than ``min(5, window)`` earlier sessions get ratio 1.0 (no reference yet).
    """
    totals = (
        bars.group_by("symbol", _session_of(pl.col("ts")).alias("session"))
        .agg(pl.col("volume").sum())
        .sort("symbol", "session")
    )
    minimum = min(5, window)
    trailing = (
        pl.col("volume").shift(1).rolling_median(window_size=window, min_samples=minimum).over("symbol")
    )
    return totals.with_columns(trailing.alias("trailing_median")).with_columns(
        pl.when(pl.col("trailing_median") > 0)
        .then(pl.col("volume") / pl.col("trailing_median"))
        .otherwise(1.0)
        .fill_null(1.0)
        .alias("volume_ratio")
    )


def _canonical_columns(bars: pl.DataFrame) -> pl.DataFrame:
    missing = [name for name in CANONICAL_COLUMNS if name not in bars.columns]
    if missing:
        message = f"bar frame lacks column(s) {missing} (has {bars.columns})"
        raise DataQualityError(message)
    ts_dtype = bars.schema["ts"]
    if not isinstance(ts_dtype, pl.Datetime):
        message = (
            f"column 'ts' must be a Datetime, got {ts_dtype}; read exports with market.loading.load_export"
        )
        raise DataQualityError(message)
    if ts_dtype.time_zone is None:
        message = (
            "column 'ts' has no time zone: naive timestamps are ambiguous; "
            "load them with market.loading.load_export and state ExportSpec.timezone"
        )
        raise DataQualityError(message)
    nulls = bars.select(pl.col("ts").is_null().sum(), pl.col("symbol").is_null().sum()).row(0)
    if any(nulls):
        message = f"{nulls[0]} row(s) without a timestamp and {nulls[1]} without a symbol"
        raise DataQualityError(message)
    return bars.select(
        pl.col("ts"),
        pl.col("symbol").cast(pl.String),
        *(pl.col(name).cast(pl.Float64) for name in CANONICAL_COLUMNS[2:]),
    )


def _to_utc(frame: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    ts_dtype = frame.schema["ts"]
    converted = 0 if isinstance(ts_dtype, pl.Datetime) and ts_dtype.time_zone == "UTC" else frame.height
    return frame.with_columns(
        pl.col("ts").dt.convert_time_zone("UTC").cast(pl.Datetime("ns", "UTC"))
    ), converted


def _wanted_symbols(frame: pl.DataFrame, *, symbols: Sequence[str] | None) -> list[str]:
    present = set(frame["symbol"].unique().to_list())
    if symbols is None:
        return sorted(present)
    missing = [symbol for symbol in symbols if symbol not in present]
    if missing:
        message = f"no bars at all for symbol(s) {missing} (present: {sorted(present)})"
        raise DataQualityError(message)
    return list(dict.fromkeys(symbols))


def _regular_session(frame: pl.DataFrame, *, bar_minutes: int) -> tuple[pl.DataFrame, int, int]:
    """Keep bars with start >= session open and start + bar <= session close; count the two kinds dropped."""
    exchange_day = pl.col("ts").dt.convert_time_zone(str(EXCHANGE_TZ)).dt.date()
    frame = frame.with_columns(exchange_day.alias("_day"))
    first_day, last_day = frame.select(
        pl.col("_day").min().alias("first"), pl.col("_day").max().alias("last")
    ).row(0)
    calendar = sessions(trading_days(first_day, last_day)).select(
        pl.col("session").alias("_day"), pl.col("open").alias("_open"), pl.col("close").alias("_close")
    )
    frame = frame.join(calendar, on="_day", how="left", maintain_order="left")
    trading_day = pl.col("_open").is_not_null()
    inside = (pl.col("ts") >= pl.col("_open")) & (
        pl.col("ts") + pl.duration(minutes=bar_minutes, time_unit="ns") <= pl.col("_close")
    )
    non_trading, outside = frame.select(
        (~trading_day).sum().alias("non_trading"), (trading_day & ~inside).sum().alias("outside")
    ).row(0)
    kept = frame.filter(trading_day & inside).drop("_day", "_open", "_close")
    return kept, int(non_trading), int(outside)


def _format_row(row: dict[str, object]) -> str:
    values = ", ".join(f"{name}={row[name]}" for name in CANONICAL_COLUMNS[2:])
    return f"{row['symbol']} {row['ts']}: {values}"


def _raise_for_conflicts(frame: pl.DataFrame) -> None:
    """Two different rows for one symbol and bar cannot be repaired without guessing."""
    conflicted = frame.filter(pl.len().over("symbol", "ts") > 1)
    if conflicted.height == 0:
        return
    bars_affected = conflicted.select("symbol", "ts").unique().height
    examples = [_format_row(row) for row in conflicted.head(2 * _EXAMPLE_ROWS).iter_rows(named=True)]
    message = (
        f"{conflicted.height} conflicting rows: {bars_affected} bar(s) appear more than once with different "
        f"values (same symbol and timestamp), e.g. {'; '.join(examples)}"
    )
    raise DataQualityError(message, failures=[f"conflicting duplicate: {line}" for line in examples])


def _align(frame: pl.DataFrame, *, symbols: list[str]) -> tuple[pl.DataFrame, dict[str, int]]:
    """Keep timestamps present for every symbol; count, per symbol, the bars dropped."""
    if len(symbols) < 2:
        return frame, dict.fromkeys(symbols, 0)
    complete = pl.col("symbol").n_unique().over("ts") == len(symbols)
    frame = frame.with_columns(complete.alias("_complete"))
    dropped = dict(frame.group_by("symbol").agg((~pl.col("_complete")).sum().alias("dropped")).iter_rows())
    counts = {symbol: int(dropped.get(symbol, 0)) for symbol in symbols}
    return frame.filter(pl.col("_complete")).drop("_complete"), counts
