"""The adapter's per-row columns: every quantity the bar-quality suite checks, computed in polars.

Great Expectations has no polars backend, so :func:`with_derived_columns` adds the per-row quantities the
suite needs (columns prefixed ``_``: finiteness, increasing timestamps, session membership, grid position,
session completeness, skipped sessions, history length, session volume ratio, stale-run length, robust return
z-score) to the canonical bar frame; :func:`validation.qc.run_qc` then converts the frame to pandas once and
GX validates plain columns.
"""

from collections.abc import Sequence
from datetime import date

import numba
import numpy as np
import polars as pl

from market.calendar import EXCHANGE_TZ, sessions, trading_days
from market.normalize import session_volume_ratios
from validation.qc_suite import NUMERIC_COLUMNS

__all__ = ["with_derived_columns"]

_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation


def with_derived_columns(
    bars: pl.DataFrame,
    *,
    bar_minutes: int,
    window: int,
    volume_window: int = 20,
    dropped_sessions: Sequence[date] = (),
) -> pl.DataFrame:
    """Add the per-row columns the suite checks; a column whose inputs are missing or mistyped is left out,
    so its expectation fails as not evaluable rather than passing."""
    schema = bars.schema
    ts_dtype = schema.get("ts")
    has_ts = isinstance(ts_dtype, pl.Datetime) and ts_dtype.time_zone is not None
    has_symbol = "symbol" in schema
    numeric = all(name in schema and schema[name].is_numeric() for name in NUMERIC_COLUMNS)
    has_close = "close" in schema and schema["close"].is_numeric()
    frame = bars
    if numeric:
        frame = frame.with_columns(
            pl.all_horizontal(pl.col(name).cast(pl.Float64).is_finite() for name in NUMERIC_COLUMNS).alias(
                "_finite"
            )
        )
    if not (has_ts and has_symbol):
        return frame
    utc = pl.col("ts").dt.convert_time_zone("UTC")
    frame = frame.with_columns(
        pl.coalesce((utc > utc.shift(1)).over("symbol"), pl.lit(True)).alias("_increasing"),
        utc.dt.convert_time_zone(str(EXCHANGE_TZ)).dt.date().alias("_day"),
    )
    frame = frame.sort("symbol", "ts", nulls_last=True, maintain_order=True)
    frame = _add_session_columns(frame, bar_minutes=bar_minutes, dropped_sessions=dropped_sessions)
    if "volume" in schema and schema["volume"].is_numeric():
        ratios = session_volume_ratios(frame.drop_nulls("ts"), window=volume_window).select(
            "symbol", pl.col("session").alias("_day"), pl.col("volume_ratio").alias("_volume_ratio")
        )
        frame = frame.join(ratios, on=["symbol", "_day"], how="left", maintain_order="left")
    if has_close:
        frame = _add_stale_runs(frame)
        frame = _add_robust_z(frame, window=window)
    return frame.drop("_day")


def _add_session_columns(
    frame: pl.DataFrame, *, bar_minutes: int, dropped_sessions: Sequence[date] = ()
) -> pl.DataFrame:
    days = frame["_day"].drop_nulls()
    calendar_days = trading_days(days.min(), days.max()) if days.len() else []  # type: ignore[arg-type]
    # Sessions dropped on purpose by a counted repair are not missing sessions.
    calendar_days = [day for day in calendar_days if day not in set(dropped_sessions)]
    calendar = (
        sessions(calendar_days)
        .with_row_index("_session_index")
        .select(
            pl.col("session").alias("_day"),
            pl.col("_session_index").cast(pl.Int64),
            pl.col("open").alias("_open"),
            pl.col("close").alias("_close"),
            (pl.col("minutes") // bar_minutes).alias("_expected_bars"),
        )
    )
    bar = pl.duration(minutes=bar_minutes, time_unit="ns")
    since_open = (pl.col("ts") - pl.col("_open")).dt.total_seconds()
    frame = frame.join(calendar, on="_day", how="left", maintain_order="left").with_columns(
        (
            pl.col("_open").is_not_null()
            & (pl.col("ts") >= pl.col("_open"))
            & (pl.col("ts") + bar <= pl.col("_close"))
        )
        .fill_null(False)
        .alias("_in_session"),
        (since_open % (60 * bar_minutes) == 0).alias("_on_grid"),
    )
    counted = pl.col("_in_session") & pl.col("_on_grid").fill_null(False)
    present = pl.col("ts").filter(counted).n_unique().over("symbol", "_day")
    frame = frame.with_columns((present / pl.col("_expected_bars")).alias("_session_completeness"))
    # Missing sessions: trading days skipped between a symbol's sessions and at either end of the span.
    first_index, last_index = 0, max(len(calendar_days) - 1, 0)
    symbol_sessions = (
        frame.filter(pl.col("_session_index").is_not_null())
        .select("symbol", "_session_index")
        .unique()
        .sort("symbol", "_session_index")
        .with_columns(
            (
                pl.col("_session_index")
                - pl.col("_session_index").shift(1).over("symbol").fill_null(first_index - 1)
                - 1
                + pl.when(pl.col("_session_index") == pl.col("_session_index").max().over("symbol"))
                .then(last_index - pl.col("_session_index"))
                .otherwise(0)
            ).alias("_sessions_skipped"),
            pl.len().over("symbol").alias("_history_sessions"),
        )
    )
    frame = frame.join(symbol_sessions, on=["symbol", "_session_index"], how="left", maintain_order="left")
    history = pl.col("_history_sessions").max().over("symbol").fill_null(0)
    return frame.with_columns(history.alias("_history_sessions")).drop(
        "_session_index", "_open", "_close", "_expected_bars"
    )


def _add_stale_runs(frame: pl.DataFrame) -> pl.DataFrame:
    """Length of the run of identical consecutive closes (within symbol and session) each row belongs to."""
    changed = pl.col("close").ne_missing(pl.col("close").shift(1)).over("symbol", "_day").fill_null(True)
    frame = frame.with_columns(changed.cast(pl.Int64).cum_sum().over("symbol", "_day").alias("_run_id"))
    return frame.with_columns(pl.len().over("symbol", "_day", "_run_id").alias("_stale_run")).drop("_run_id")


def _add_robust_z(frame: pl.DataFrame, *, window: int) -> pl.DataFrame:
    """Robust z-score of each 1-bar intraday log return against the previous ``window`` returns of its symbol.

    z_t = (r_t - median(W_t)) / (1.4826 * median(|W_t - median(W_t)|)), W_t the ``window`` returns before t
    (first bars of sessions have no return: overnight gaps are not scored). Undefined (null) during the
    first window, where the trailing MAD is zero, and for non-positive or non-finite prices.
    """
    log_close = pl.when(pl.col("close") > 0).then(pl.col("close").cast(pl.Float64).log())
    returns = (
        frame.with_row_index("_row")
        .select("_row", "symbol", (log_close - log_close.shift(1)).over("symbol", "_day").alias("_return"))
        .filter(pl.col("_return").is_finite())
    )
    rows: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    for (_,), group in returns.group_by(["symbol"], maintain_order=True):
        values = group["_return"].to_numpy()
        rows.append(group["_row"].to_numpy())
        scores.append(_trailing_robust_z(values, window=window))
    if rows:
        z_frame = pl.DataFrame(
            {"_row": np.concatenate(rows), "_robust_z": np.concatenate(scores)},
            schema={"_row": pl.UInt32, "_robust_z": pl.Float64},
        ).with_columns(pl.col("_robust_z").fill_nan(None))
    else:
        z_frame = pl.DataFrame(schema={"_row": pl.UInt32, "_robust_z": pl.Float64})
    return (
        frame.with_row_index("_row").join(z_frame, on="_row", how="left", maintain_order="left").drop("_row")
    )


def _trailing_robust_z(values: np.ndarray, *, window: int) -> np.ndarray:
    """Exact trailing median/MAD z-scores of ``values`` (NaN where undefined)."""
    return _trailing_robust_z_kernel(np.ascontiguousarray(values, dtype=np.float64), window, _MAD_TO_SIGMA)


@numba.njit(cache=True)
def _median_of_sorted(sorted_values: np.ndarray) -> float:
    size = sorted_values.size
    middle = size // 2
    if size % 2:
        return sorted_values[middle]
    return 0.5 * (sorted_values[middle - 1] + sorted_values[middle])


@numba.njit(cache=True)
def _median_distance(sorted_values: np.ndarray, center: float) -> float:
    """Median of |x - center| over a sorted window, merging outward from ``center`` (no second sort)."""
    size = sorted_values.size
    right = np.searchsorted(sorted_values, center)
    left = right - 1
    wanted = size // 2  # 0-based rank of the upper middle distance
    previous = 0.0
    current = 0.0
    for _ in range(wanted + 1):
        take_left = right >= size or (
            left >= 0 and center - sorted_values[left] <= sorted_values[right] - center
        )
        previous = current
        if take_left:
            current = center - sorted_values[left]
            left -= 1
        else:
            current = sorted_values[right] - center
            right += 1
    if size % 2:
        return current
    return 0.5 * (previous + current)


@numba.njit(cache=True)
def _trailing_robust_z_kernel(values: np.ndarray, window: int, mad_to_sigma: float) -> np.ndarray:
    """z_t from the ``window`` values before t; the window stays sorted as it slides (O(window) a step)."""
    size = values.size
    scores = np.full(size, np.nan)
    if size <= window:
        return scores
    sorted_window = np.sort(values[:window])
    for index in range(window, size):
        center = _median_of_sorted(sorted_window)
        scale = mad_to_sigma * _median_distance(sorted_window, center)
        if scale > 0.0:
            scores[index] = (values[index] - center) / scale
        if index + 1 == size:
            break
        # Slide: drop values[index - window], insert values[index], keeping the window sorted.
        position = np.searchsorted(sorted_window, values[index - window])
        incoming = values[index]
        insert_at = np.searchsorted(sorted_window, incoming)
        if insert_at > position:
            insert_at -= 1
            for shift in range(position, insert_at):
                sorted_window[shift] = sorted_window[shift + 1]
        else:
            for shift in range(position, insert_at, -1):
                sorted_window[shift] = sorted_window[shift - 1]
        sorted_window[insert_at] = incoming
    return scores
