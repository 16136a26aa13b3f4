"""Triple-barrier labels, meta-labels, CUSUM event sampling and volatility targets (AFML chapters 2-3).

This is the library of labeling primitives, usable on any close series; the pipeline's labeling stage over
the two-symbol bar frame is :mod:`market.labeling`. The module runs past 500 lines on purpose: over a
third of it turns the accepted inputs (a polars frame, a pandas Series or a positional polars Series; events,
targets and sides per event or joined by timestamp; bar-count or time-delta vertical barriers) into one
checked form that every primitive here shares, and that code means nothing apart from them.

Conventions follow López de Prado, *Advances in Financial Machine Learning* (2018), snippets 2.4 and 3.1-3.5:

- Barriers are on the simple return from the event's close, ``close[j] / close[event] - 1``, multiplied by
  the side when one is given. Touches are strict: the profit-take barrier is touched when
  ``ret > profit_take_mult * target`` and the stop-loss barrier when ``ret < -stop_loss_mult * target``.
  A multiplier of 0 disables its barrier.
- The searched path runs from the event bar through the vertical-barrier bar, both included. A vertical
  barrier of ``h`` bars sits ``h`` bars after the event; a time-delta barrier sits at the first bar at or
  after ``event + delta`` (snippet 3.4). An event whose vertical barrier would fall after the data has none,
  and its path runs to the end of the data.
- ``t1`` is the earliest of the vertical barrier and the two touches. A touch on the vertical-barrier bar
  itself counts as a touch (``barrier`` is ``"profit_take"`` or ``"stop_loss"``, not ``"vertical"``).
- Events whose target is not above ``min_return`` are dropped (snippet 3.3, ``trgt > minRet``), and so are
  events with no target (missing in a joined frame, null or NaN).

Timestamps: ``close`` is a polars frame with columns ``ts`` (Datetime) and ``close`` (one symbol), a pandas
Series with a DatetimeIndex, or a polars Series. A polars Series carries no timestamps: its bars are
identified by position (``0..n-1``, Int64), event "timestamps" are positions, and time-delta barriers are
refused.
"""

import datetime
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import numpy as np
import pandas as pd
import polars as pl
from numba import njit

from market.series import as_series

__all__ = [
    "BARRIER_NAMES",
    "LABEL_COLUMNS",
    "cusum_filter",
    "daily_volatility",
    "ewm_volatility",
    "triple_barrier",
]

# Barrier codes used by the kernel; BARRIER_NAMES[code] is the name in the output's `barrier` column.
_PROFIT_TAKE: Final = 0
_STOP_LOSS: Final = 1
_VERTICAL: Final = 2
_NO_BARRIER: Final = 3
BARRIER_NAMES: Final[tuple[str, ...]] = ("profit_take", "stop_loss", "vertical", "none")

LABEL_COLUMNS: Final[tuple[str, ...]] = (
    "event_ts",
    "horizon",
    "t1",
    "barrier",
    "ret",
    "target",
    "side",
    "label",
    "meta_label",
)

_NANOSECONDS_PER_DAY: Final = 86_400 * 1_000_000_000
_INT64_MAX: Final = np.iinfo(np.int64).max

CloseInput: TypeAlias = pl.DataFrame | pl.Series | pd.Series
EventsInput: TypeAlias = pl.Series | pd.Series | pd.DatetimeIndex | np.ndarray | Sequence[Any]
PerEventInput: TypeAlias = pl.Series | pl.DataFrame | pd.Series | np.ndarray | float
VerticalBarrier: TypeAlias = int | datetime.timedelta | Sequence[int] | None


@dataclass(frozen=True)
class _Bars:
    """A close series reduced to arrays: int64 ticks (ns since epoch, or positions) and float64 closes."""

    ticks: np.ndarray
    close: np.ndarray
    ts_dtype: pl.DataType
    positional: bool

    @property
    def size(self) -> int:
        return int(self.close.shape[0])


# ------------------------------------------------------------------------------------------------------------
# Numba kernels
# ------------------------------------------------------------------------------------------------------------


@njit(nogil=True)
def _first_touch_kernel(
    close: np.ndarray,
    event_pos: np.ndarray,
    vertical_pos: np.ndarray,
    upper: np.ndarray,
    lower: np.ndarray,
    side: np.ndarray,
    t1_pos: np.ndarray,
    barrier_code: np.ndarray,
) -> None:
    """Fill ``t1_pos`` (-1: none) and ``barrier_code`` for each event; see the module docstring for rules."""
    last = close.shape[0] - 1
    for k in range(event_pos.shape[0]):
        start = event_pos[k]
        vertical = vertical_pos[k]
        end = vertical if vertical >= 0 else last
        base = close[start]
        direction = side[k]
        up = upper[k]
        low = lower[k]
        found = -1
        code = _NO_BARRIER
        for j in range(start, end + 1):
            ret = (close[j] / base - 1.0) * direction
            if ret > up:
                found = j
                code = _PROFIT_TAKE
                break
            if ret < low:
                found = j
                code = _STOP_LOSS
                break
        if found < 0 and vertical >= 0:
            found = vertical
            code = _VERTICAL
        t1_pos[k] = found
        barrier_code[k] = code


@njit(nogil=True)
def _cusum_kernel(diff: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """Snippet 2.4 on precomputed differences; returns the positions in ``diff`` where an event fires."""
    out = np.empty(diff.shape[0], dtype=np.int64)
    count = 0
    positive = 0.0
    negative = 0.0
    for i in range(diff.shape[0]):
        positive = max(0.0, positive + diff[i])
        negative = min(0.0, negative + diff[i])
        if negative < -threshold[i]:
            negative = 0.0
            out[count] = i
            count += 1
        elif positive > threshold[i]:
            positive = 0.0
            out[count] = i
            count += 1
    return out[:count]


# ------------------------------------------------------------------------------------------------------------
# Input normalization
# ------------------------------------------------------------------------------------------------------------


def _datetime_ticks(series: pl.Series, *, what: str) -> np.ndarray:
    """Nanoseconds since the epoch (UTC for zone-aware series) of a Datetime series without nulls."""
    if series.null_count() > 0:
        message = f"{what} has {series.null_count()} null timestamp(s)"
        raise ValueError(message)
    return series.dt.cast_time_unit("ns").to_physical().to_numpy().astype(np.int64, copy=False)


def _check_strictly_increasing(ticks: np.ndarray, *, what: str) -> None:
    if ticks.shape[0] > 1:
        steps = np.diff(ticks)
        bad = np.flatnonzero(steps <= 0)
        if bad.size:
            kind = "duplicated" if steps[bad[0]] == 0 else "unsorted"
            message = (
                f"{what} must be strictly increasing; {bad.size} position(s) are not "
                f"(first {kind} at position {int(bad[0]) + 1})"
            )
            raise ValueError(message)


def _bars_from_close(close: CloseInput) -> _Bars:
    """Validate ``close`` (see the module docstring for accepted forms) and reduce it to arrays."""
    if isinstance(close, pl.DataFrame):
        missing = [name for name in ("ts", "close") if name not in close.columns]
        if missing:
            message = f"close frame lacks column(s) {missing}; it needs `ts` and `close`"
            raise ValueError(message)
        if "symbol" in close.columns and close["symbol"].n_unique() > 1:
            message = (
                f"close frame holds {close['symbol'].n_unique()} symbols; label one symbol at a time "
                "(filter on `symbol` first)"
            )
            raise ValueError(message)
        ts_series = close["ts"]
        close_series = close["close"]
    elif isinstance(close, pd.Series):
        if not pd.api.types.is_datetime64_any_dtype(close.index):
            message = f"a pandas close series needs a DatetimeIndex, got {type(close.index).__name__}"
            raise ValueError(message)
        ts_series = as_series(close.index, what="close index")
        close_series = as_series(close, what="close")
    elif isinstance(close, pl.Series):
        ts_series = None
        close_series = close
    else:
        message = (
            "close must be a polars frame with `ts` and `close`, a pandas Series with a DatetimeIndex or a "
            f"polars Series, got {type(close).__name__}"
        )
        raise TypeError(message)

    if not close_series.dtype.is_numeric():
        message = f"close values must be numeric, got {close_series.dtype}"
        raise ValueError(message)
    if close_series.null_count() > 0:
        message = f"close has {close_series.null_count()} null value(s)"
        raise ValueError(message)
    values = close_series.cast(pl.Float64).to_numpy().astype(np.float64, copy=True)
    bad = ~np.isfinite(values) | (values <= 0.0)
    if bad.any():
        message = (
            f"close must be finite and positive; {int(bad.sum())} value(s) are not "
            f"(first at position {int(np.flatnonzero(bad)[0])})"
        )
        raise ValueError(message)

    if ts_series is None:
        return _Bars(np.arange(values.shape[0], dtype=np.int64), values, pl.Int64(), positional=True)
    if ts_series.dtype != pl.Datetime:
        message = f"close timestamps must be Datetime, got {ts_series.dtype}"
        raise ValueError(message)
    ticks = _datetime_ticks(ts_series, what="close timestamps")
    _check_strictly_increasing(ticks, what="close timestamps")
    return _Bars(ticks, values, pl.Datetime("ns", _time_zone(ts_series.dtype)), positional=False)


def _time_zone(dtype: pl.DataType) -> str | None:
    return dtype.time_zone if isinstance(dtype, pl.Datetime) else None


def _ticks_like_bars(series: pl.Series, *, bars: _Bars, what: str) -> np.ndarray:
    """Ticks of timestamps given for ``bars`` (positions for a positional close)."""
    if bars.positional:
        if not series.dtype.is_integer():
            message = (
                f"{what} must be integer bar positions when close is a polars Series, got {series.dtype}"
            )
            raise ValueError(message)
        if series.null_count() > 0:
            message = f"{what} has {series.null_count()} null position(s)"
            raise ValueError(message)
        return series.cast(pl.Int64).to_numpy().astype(np.int64, copy=False)
    if series.dtype != pl.Datetime:
        message = f"{what} must be Datetime timestamps, got {series.dtype}"
        raise ValueError(message)
    zone = _time_zone(series.dtype)
    close_zone = _time_zone(bars.ts_dtype)
    if (zone is None) != (close_zone is None):
        message = (
            f"{what} time zone ({zone}) and close time zone ({close_zone}) must be both set or both unset"
        )
        raise ValueError(message)
    return _datetime_ticks(series, what=what)


def _event_positions(events: EventsInput | None, *, bars: _Bars) -> np.ndarray:
    """Bar positions of the events; every event must be a bar of ``close``."""
    if events is None:
        return np.arange(bars.size, dtype=np.int64)
    ticks = _ticks_like_bars(as_series(events, what="events"), bars=bars, what="events")
    _check_strictly_increasing(ticks, what="events")
    positions = np.searchsorted(bars.ticks, ticks, side="left")
    unknown = positions >= bars.size
    inside = ~unknown
    unknown[inside] = bars.ticks[positions[inside]] != ticks[inside]
    if unknown.any():
        message = (
            f"{int(unknown.sum())} event(s) are not bars of close (first at event position "
            f"{int(np.flatnonzero(unknown)[0])}); events must be taken from the close timestamps"
        )
        raise ValueError(message)
    return positions.astype(np.int64, copy=False)


def _per_event_values(values: PerEventInput, *, what: str, bars: _Bars, event_pos: np.ndarray) -> np.ndarray:
    """Align ``values`` with the events as float64, NaN where missing.

    A scalar applies to every event; a polars frame (``ts`` + one value column, or a column named ``what``) or
    a pandas Series with a DatetimeIndex is joined on the event timestamp; any other series or array is
    positional and must have one value per event.
    """
    n_events = event_pos.shape[0]
    if isinstance(values, bool):
        message = f"{what} must be a number, a series or a frame, not a bool"
        raise TypeError(message)
    if isinstance(values, int | float | np.integer | np.floating):
        return np.full(n_events, float(values), dtype=np.float64)
    if isinstance(values, pd.Series) and isinstance(values.index, pd.DatetimeIndex):
        values = pl.DataFrame(
            {"ts": as_series(values.index, what=f"{what} index"), what: as_series(values, what=what)}
        )
    if isinstance(values, pl.DataFrame):
        return _joined_values(values, what=what, bars=bars, event_pos=event_pos)
    series = as_series(values, what=what)
    if series.len() != n_events:
        message = (
            f"{what} has {series.len()} value(s) but there are {n_events} event(s); a positional {what} "
            f"needs one value per event (or pass a frame with `ts` to join on the event timestamp)"
        )
        raise ValueError(message)
    if not series.dtype.is_numeric():
        message = f"{what} values must be numeric, got {series.dtype}"
        raise ValueError(message)
    return series.cast(pl.Float64).fill_null(np.nan).to_numpy().astype(np.float64, copy=True)


def _joined_values(frame: pl.DataFrame, *, what: str, bars: _Bars, event_pos: np.ndarray) -> np.ndarray:
    if "ts" not in frame.columns:
        message = f"a {what} frame needs a `ts` column to join on the event timestamps"
        raise ValueError(message)
    value_columns = [name for name in frame.columns if name != "ts"]
    if what in value_columns:
        value_column = what
    elif len(value_columns) == 1:
        value_column = value_columns[0]
    else:
        message = (
            f"a {what} frame needs a `{what}` column or exactly one column besides `ts`, got {frame.columns}"
        )
        raise ValueError(message)
    if not frame[value_column].dtype.is_numeric():
        message = f"{what} column `{value_column}` must be numeric, got {frame[value_column].dtype}"
        raise ValueError(message)
    frame_ticks = _ticks_like_bars(frame["ts"], bars=bars, what=f"{what} timestamps")
    order = np.argsort(frame_ticks, kind="stable")
    sorted_ticks = frame_ticks[order]
    if sorted_ticks.shape[0] > 1 and (np.diff(sorted_ticks) == 0).any():
        message = f"{what} frame has duplicated timestamps"
        raise ValueError(message)
    frame_values = frame[value_column].cast(pl.Float64).fill_null(np.nan).to_numpy()[order]
    event_ticks = bars.ticks[event_pos]
    found = np.searchsorted(sorted_ticks, event_ticks, side="left")
    clipped = np.minimum(found, max(sorted_ticks.shape[0] - 1, 0))
    out = np.full(event_pos.shape[0], np.nan, dtype=np.float64)
    if sorted_ticks.shape[0]:
        hit = (found < sorted_ticks.shape[0]) & (sorted_ticks[clipped] == event_ticks)
        out[hit] = frame_values[clipped[hit]]
    return out


def _timedelta_ticks(delta: datetime.timedelta) -> int:
    if isinstance(delta, pd.Timedelta):
        return int(delta.value)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _vertical_barriers(
    vertical_barrier: VerticalBarrier, *, bars: _Bars
) -> list[int | datetime.timedelta | None]:
    """Validate ``vertical_barrier`` and return the list of horizons to label."""
    if vertical_barrier is None:
        return [None]
    if isinstance(vertical_barrier, datetime.timedelta):
        if bars.positional:
            message = "a time-delta vertical barrier needs timestamps; close is a positional polars Series"
            raise ValueError(message)
        if _timedelta_ticks(vertical_barrier) <= 0:
            message = f"a time-delta vertical barrier must be positive, got {vertical_barrier}"
            raise ValueError(message)
        return [vertical_barrier]
    horizons: list[Any]
    if isinstance(vertical_barrier, int | np.integer) and not isinstance(vertical_barrier, bool):
        horizons = [vertical_barrier]
    elif isinstance(vertical_barrier, Sequence) and not isinstance(vertical_barrier, str | bytes):
        horizons = list(vertical_barrier)
        if not horizons:
            message = "vertical_barrier is an empty sequence; pass None for no vertical barrier"
            raise ValueError(message)
    else:
        message = (
            "vertical_barrier must be a number of bars, a sequence of them, a timedelta or None, got "
            f"{type(vertical_barrier).__name__}"
        )
        raise TypeError(message)
    for horizon in horizons:
        if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
            message = (
                f"every vertical barrier horizon must be an integer number of bars >= 1, got {horizon!r}"
            )
            raise ValueError(message)
    if len(set(horizons)) != len(horizons):
        message = f"vertical barrier horizons must be unique, got {horizons}"
        raise ValueError(message)
    return [int(horizon) for horizon in horizons]


def _non_negative_finite(value: float, *, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        message = f"{name} must be a number, got {type(value).__name__}"
        raise TypeError(message)
    if not math.isfinite(value) or value < 0:
        message = f"{name} must be finite and >= 0, got {value}"
        raise ValueError(message)
    return float(value)


# ------------------------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------------------------


def triple_barrier(
    close: CloseInput,
    *,
    events: EventsInput | None = None,
    target: PerEventInput,
    profit_take_mult: float = 1.0,
    stop_loss_mult: float = 1.0,
    vertical_barrier: VerticalBarrier = (10, 20, 50),
    min_return: float = 0.0,
    side: PerEventInput | None = None,
    label_vertical_by_sign: bool = False,
    min_return_threshold: float = 0.001,
) -> pl.DataFrame:
    """Label events with the triple-barrier method (AFML snippets 3.2-3.5), optionally as meta-labels.

    Args:
        close: bar closes of one symbol: a polars frame with ``ts`` (Datetime) and ``close``, a pandas Series
            with a DatetimeIndex, or a polars Series (bars identified by position; see the module docstring).
        events: event timestamps, each one a bar of ``close`` (e.g. from :func:`cusum_filter`), strictly
            increasing; ``None`` labels every bar.
        target: barrier width per event (a return, typically a volatility estimate). A scalar applies to all
            events; a polars frame with ``ts`` and one value column (e.g. :func:`daily_volatility`'s output)
            or a pandas Series with a DatetimeIndex is joined on the event timestamp; any other series/array
            is positional with one value per event. Events without a target are dropped.
        profit_take_mult: profit-take barrier at ``+profit_take_mult * target``; 0 disables it.
        stop_loss_mult: stop-loss barrier at ``-stop_loss_mult * target``; 0 disables it.
        vertical_barrier: bars after the event (one int, or several for a long output with one block per
            horizon, in the given order), a time delta (first bar at or after ``event + delta``), or ``None``.
        min_return: events whose target is not above it are dropped.
        side: optional bet side per event (+1 long, -1 short), aligned like ``target``; enables meta-labels.
        label_vertical_by_sign: label vertical exits by the sign of their return when ``|ret| >=
            min_return_threshold`` (else 0), instead of 0.
        min_return_threshold: see ``label_vertical_by_sign``.

    Returns:
        One row per kept event and horizon, columns :data:`LABEL_COLUMNS`: ``event_ts``; ``horizon`` (Int64
        bars, null for a time-delta or no vertical barrier); ``t1`` (first barrier reached; null when none is
        reached within the data); ``barrier`` (``"profit_take"``, ``"stop_loss"``, ``"vertical"``,
        ``"none"``); ``ret`` (simple return at ``t1``, times ``side``; null when ``t1`` is null); ``target``;
        ``side`` (Int8, null without ``side``); ``label`` (Int8: +1 profit-take first, -1 stop-loss first, 0
        vertical or none); ``meta_label`` (Int8, null without ``side``: 1 when ``label`` is +1, i.e. the
        profit-take barrier in the side's direction was touched first, else 0).

    Raises:
        ValueError: misaligned or malformed inputs (unsorted or duplicated timestamps, events that are not
            bars, target/side of the wrong length, non-positive closes, negative multipliers, horizons < 1,
            side not in {-1, +1}, infinite targets).
        TypeError: an argument of an unsupported type (e.g. a bool where a number is expected).
    """
    bars = _bars_from_close(close)
    profit_take_mult = _non_negative_finite(profit_take_mult, name="profit_take_mult")
    stop_loss_mult = _non_negative_finite(stop_loss_mult, name="stop_loss_mult")
    min_return = _non_negative_finite(min_return, name="min_return")
    min_return_threshold = _non_negative_finite(min_return_threshold, name="min_return_threshold")
    horizons = _vertical_barriers(vertical_barrier, bars=bars)
    if profit_take_mult == 0.0 and stop_loss_mult == 0.0 and horizons == [None]:
        warnings.warn(
            "triple_barrier: every barrier is disabled, so every event gets barrier 'none'",
            UserWarning,
            stacklevel=2,
        )

    event_pos = _event_positions(events, bars=bars)
    targets = _per_event_values(target, what="target", bars=bars, event_pos=event_pos)
    if np.isinf(targets).any():
        message = f"target has {int(np.isinf(targets).sum())} infinite value(s)"
        raise ValueError(message)
    sides = None if side is None else _per_event_values(side, what="side", bars=bars, event_pos=event_pos)

    keep = targets > min_return  # NaN (missing) compares False: dropped, as in the book
    event_pos = event_pos[keep]
    targets = targets[keep]
    if sides is not None:
        sides = sides[keep]
        bad_side = ~np.isin(sides, (-1.0, 1.0))
        if bad_side.any():
            message = (
                f"side must be -1 or +1 for every kept event; {int(bad_side.sum())} are not "
                f"(first value {sides[np.flatnonzero(bad_side)[0]]})"
            )
            raise ValueError(message)

    upper = profit_take_mult * targets if profit_take_mult > 0 else np.full(targets.shape[0], np.inf)
    lower = -stop_loss_mult * targets if stop_loss_mult > 0 else np.full(targets.shape[0], -np.inf)
    direction = sides if sides is not None else np.ones(targets.shape[0], dtype=np.float64)
    event_close = bars.close[event_pos]

    blocks = []
    for horizon in horizons:
        vertical_pos = _vertical_positions(horizon, bars=bars, event_pos=event_pos)
        t1_pos = np.empty(event_pos.shape[0], dtype=np.int64)
        codes = np.empty(event_pos.shape[0], dtype=np.int8)
        if event_pos.shape[0]:
            _first_touch_kernel(bars.close, event_pos, vertical_pos, upper, lower, direction, t1_pos, codes)
        reached = t1_pos >= 0
        returns = np.full(event_pos.shape[0], np.nan)
        returns[reached] = (bars.close[t1_pos[reached]] / event_close[reached] - 1.0) * direction[reached]
        labels = np.zeros(event_pos.shape[0], dtype=np.int8)
        labels[codes == _PROFIT_TAKE] = 1
        labels[codes == _STOP_LOSS] = -1
        if label_vertical_by_sign:
            by_sign = (codes == _VERTICAL) & (np.abs(returns) >= min_return_threshold)
            labels[by_sign] = np.sign(returns[by_sign]).astype(np.int8)
        blocks.append(
            _label_frame(
                bars=bars,
                event_pos=event_pos,
                horizon=horizon if isinstance(horizon, int) else None,
                t1_pos=t1_pos,
                codes=codes,
                returns=returns,
                targets=targets,
                sides=sides,
                labels=labels,
            )
        )
    return pl.concat(blocks, how="vertical") if len(blocks) > 1 else blocks[0]


def _vertical_positions(
    horizon: int | datetime.timedelta | None, *, bars: _Bars, event_pos: np.ndarray
) -> np.ndarray:
    """Bar position of each event's vertical barrier; -1 when there is none (or it falls after the data)."""
    if horizon is None:
        return np.full(event_pos.shape[0], -1, dtype=np.int64)
    if isinstance(horizon, int):
        vertical = event_pos + horizon
    else:
        delta = _timedelta_ticks(horizon)
        # Saturate instead of overflowing int64: a barrier past the last representable tick is past the data.
        barrier_ticks = np.minimum(bars.ticks[event_pos], _INT64_MAX - delta) + delta
        vertical = np.searchsorted(bars.ticks, barrier_ticks, side="left").astype(np.int64)
    vertical[vertical >= bars.size] = -1
    return vertical


def _label_frame(
    *,
    bars: _Bars,
    event_pos: np.ndarray,
    horizon: int | None,
    t1_pos: np.ndarray,
    codes: np.ndarray,
    returns: np.ndarray,
    targets: np.ndarray,
    sides: np.ndarray | None,
    labels: np.ndarray,
) -> pl.DataFrame:
    n_events = event_pos.shape[0]
    reached = t1_pos >= 0
    t1_ticks = bars.ticks[np.where(reached, t1_pos, 0)] if bars.size else np.zeros(n_events, np.int64)
    if sides is not None:
        side_column = pl.Series("side", sides.astype(np.int8))
        meta_column = pl.Series("meta_label", (labels == 1).astype(np.int8))
    else:
        side_column = pl.repeat(None, n_events, dtype=pl.Int8, eager=True).alias("side")
        meta_column = pl.repeat(None, n_events, dtype=pl.Int8, eager=True).alias("meta_label")
    if horizon is None:
        horizon_column = pl.repeat(None, n_events, dtype=pl.Int64, eager=True).alias("horizon")
    else:
        horizon_column = pl.Series("horizon", np.full(n_events, horizon, dtype=np.int64))
    frame = pl.DataFrame(
        [
            pl.Series("event_ts", bars.ticks[event_pos]).cast(bars.ts_dtype),
            horizon_column,
            pl.Series("t1", t1_ticks).cast(bars.ts_dtype),
            pl.Series("_reached", reached),
            pl.Series("barrier", codes).replace_strict(
                dict(enumerate(BARRIER_NAMES)), return_dtype=pl.String
            ),
            pl.Series("ret", returns, nan_to_null=True),
            pl.Series("target", targets),
            side_column,
            pl.Series("label", labels),
            meta_column,
        ]
    )
    return frame.with_columns(
        pl.when(pl.col("_reached")).then(pl.col("t1")).otherwise(None).alias("t1"),
    ).select(LABEL_COLUMNS)


def cusum_filter(close: CloseInput, *, threshold: float | pl.Series | np.ndarray) -> pl.Series:
    """Sample events with the symmetric CUSUM filter on log prices (AFML snippet 2.4).

    The filter runs on ``diff(log(close))``: ``s_pos = max(0, s_pos + d)``, ``s_neg = min(0, s_neg + d)``; an
    event fires at the bar where ``s_neg < -threshold`` (checked first, resetting ``s_neg``) or ``s_pos >
    threshold`` (resetting ``s_pos``). The first bar has no difference and never fires.

    Args:
        close: closes of one symbol, in any form :func:`triple_barrier` accepts.
        threshold: a positive scalar, or one value per bar (a series/array as long as ``close``); a null/NaN
            per-bar value means no event can fire at that bar (the sums keep accumulating).

    Returns:
        The event timestamps (positions for a positional close), named ``event_ts``.
    """
    bars = _bars_from_close(close)
    if isinstance(threshold, bool):
        message = "threshold must be a number or a per-bar series, not a bool"
        raise TypeError(message)
    if isinstance(threshold, int | float | np.integer | np.floating):
        if not math.isfinite(threshold) or threshold <= 0:
            message = f"threshold must be finite and positive, got {threshold}"
            raise ValueError(message)
        thresholds = np.full(bars.size, float(threshold))
    else:
        series = as_series(threshold, what="threshold")
        if series.len() != bars.size:
            message = f"threshold has {series.len()} value(s) but close has {bars.size} bar(s)"
            raise ValueError(message)
        if not series.dtype.is_numeric():
            message = f"threshold values must be numeric, got {series.dtype}"
            raise ValueError(message)
        thresholds = series.cast(pl.Float64).fill_null(np.nan).to_numpy().astype(np.float64, copy=True)
        if (thresholds < 0).any():
            message = f"threshold has {int((thresholds < 0).sum())} negative value(s)"
            raise ValueError(message)
    if bars.size < 2:
        return pl.Series("event_ts", [], dtype=bars.ts_dtype)
    diff = np.diff(np.log(bars.close))
    fired = _cusum_kernel(diff, thresholds[1:]) + 1
    return pl.Series("event_ts", bars.ticks[fired]).cast(bars.ts_dtype)


def _ewm_std_frame(
    ts_ticks: np.ndarray, returns: np.ndarray, *, ts_dtype: pl.DataType, span: int
) -> pl.DataFrame:
    volatility = (
        pl.Series("volatility", returns)
        .ewm_std(span=span, adjust=True, bias=False, min_samples=1)
        .fill_nan(None)
    )
    return pl.DataFrame([pl.Series("ts", ts_ticks).cast(ts_dtype), volatility])


def _check_span(span: int) -> None:
    if isinstance(span, bool) or not isinstance(span, int | np.integer) or span < 1:
        message = f"span must be an integer >= 1, got {span!r}"
        raise ValueError(message)


def ewm_volatility(close: CloseInput, *, span: int = 100) -> pl.DataFrame:
    """EWM standard deviation of 1-bar simple returns (pandas ``ewm(span).std()``: adjusted, unbiased).

    The first bar has no return and is dropped; the second bar's volatility (one return) is null.

    Returns:
        Frame ``ts``, ``volatility`` (Float64), usable as ``target`` in :func:`triple_barrier`.
    """
    _check_span(span)
    bars = _bars_from_close(close)
    returns = bars.close[1:] / bars.close[:-1] - 1.0
    return _ewm_std_frame(bars.ticks[1:], returns, ts_dtype=bars.ts_dtype, span=int(span))


def daily_volatility(close: CloseInput, *, span: int = 100) -> pl.DataFrame:
    """Daily volatility of AFML snippet 3.1.

    Each bar's return is taken against the last bar strictly more than one day (24 h) earlier, exactly as the
    book's ``close.index.searchsorted(close.index - pd.Timedelta(days=1)) - 1``; bars with no such earlier bar
    are dropped. The returns' EWM standard deviation (pandas ``ewm(span).std()``) is the volatility; the first
    kept bar's volatility (one return) is null.

    Returns:
        Frame ``ts``, ``volatility`` (Float64).
    """
    _check_span(span)
    bars = _bars_from_close(close)
    if bars.positional:
        message = "daily_volatility needs timestamps; close is a positional polars Series"
        raise ValueError(message)
    day_earlier = np.searchsorted(bars.ticks, bars.ticks - _NANOSECONDS_PER_DAY, side="left")
    kept = np.flatnonzero(day_earlier > 0)
    returns = bars.close[kept] / bars.close[day_earlier[kept] - 1] - 1.0
    return _ewm_std_frame(bars.ticks[kept], returns, ts_dtype=bars.ts_dtype, span=int(span))
