"""The walk-forward training plan: refit times, blocks, and which samples train which block's model.

- **Samples.** A sample is a feature bar with a label at the primary horizon whose ``t1`` is known (events
  with barrier ``"none"``, ``t1`` null, have no known label and are never trained on). Every feature bar
  gets a signal, sample or not.
- **Refit times (expanding walk-forward).** Sessions are the calendar dates (America/New_York) of the
  feature bars, counted from the first one. A model is refitted at the first feature bar of every
  ``refit_every_sessions``-th session (sessions 0, N, 2N, ...) and at each time in ``window_starts`` (so
  every named window, e.g. selection and test, begins with a fresh model); a window start between two bars
  takes effect at the first feature bar at or after it, which trains on the same samples. Refit times
  depend only on the feature timestamps and ``window_starts``, never on sample counts or label values, so
  no price after ``t`` can move a refit time at or before ``t``. The refit times are the same for every
  symbol.
- **Blocks.** A block is the rows from one refit time up to the next (the last block runs to the end). The
  first refit is the first feature bar, so every row lies in a block; ``block`` numbers them from 0 in time
  order, warm-up blocks included. The model of the block starting at ``b`` trains on every sample with
  ``t1 < b`` (strict), of any earlier block or window: the set only grows (expanding). It predicts the
  block's rows (``source="walk_forward"``). No training sample comes after the block, so no embargo is
  needed, and purging is the ``t1 < b`` rule itself: a sample whose label is still open at ``b`` waits for
  a later block.
- **Warm-up.** A block whose training set has fewer than ``min_train_samples`` samples or fewer than two
  label classes has no model: its rows get the explicit neutral signal 0.0 with ``source="warmup"`` and
  are not scored. Block 0 is always a warm-up block (no label ends before the first feature bar); since
  training sets only grow, the warm-up blocks are the first ones.
- **Windows.** ``window`` names the window each row lies in: ``"train"`` before the first window start,
  then the ``window_starts`` names in time order. A block never straddles two windows.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Final

import numpy as np
import polars as pl

from market.calendar import EXCHANGE_TZ
from market.signal.config import SignalConfig
from market.signal.inputs import check_features, datetime_ticks, iso_time, primary_labels, utc_ticks

__all__ = ["NO_WINDOWS", "TRAIN_WINDOW", "SymbolData", "SymbolTrainingPlan", "prepare", "training_plan"]

TRAIN_WINDOW: Final = "train"
"""Name of the window before the first of ``window_starts`` (every row when there is none)."""
NO_WINDOWS: Final[Mapping[str, datetime]] = MappingProxyType({})
"""The default ``window_starts``: no named window, every row is in ``"train"``."""


@dataclass(frozen=True)
class SymbolTrainingPlan:
    """Which samples train which block's model, and which bars it predicts, for one symbol.

    Bars are the symbol's feature rows in time order; samples are positions into them; a block's training
    and test sets are positions into the samples. The causal rule:
    ``sample_t1[block_train[k]] < block_start[k] <= bar_ts[block_bars[k]]``.
    """

    symbol: str
    bar_ts: np.ndarray
    """int64 nanoseconds since the epoch (UTC) of every feature bar, increasing."""
    bar_block: np.ndarray
    """int64 block of each bar: the last block whose start is at or before the bar."""
    sample_bars: np.ndarray
    """Bar positions of the samples (feature bars with a resolved primary-horizon label)."""
    sample_t1: np.ndarray
    """int64 nanoseconds of each sample's label end ``t1``."""
    sample_label: np.ndarray
    """int8 label (-1/0/+1) of each sample."""
    block_start: np.ndarray
    """int64 nanoseconds of each block's refit time (a feature bar), increasing; the same for every symbol."""
    block_window: tuple[str, ...]
    """Window name of each block (``"train"`` or a ``window_starts`` name)."""
    block_train: tuple[np.ndarray, ...]
    """Per block, the sample positions its model trains on: every sample with ``t1 < block_start``."""
    block_test: tuple[np.ndarray, ...]
    """Per block, the sample positions among its bars (scored against their labels, never fitted on)."""
    block_bars: tuple[np.ndarray, ...]
    """Per block, the bar positions its model predicts (contiguous, increasing)."""
    block_has_model: np.ndarray
    """bool per block: at least ``min_train_samples`` training samples of at least two classes; False marks
    a warm-up block (neutral signal)."""


@dataclass(frozen=True)
class _Schedule:
    block_start: np.ndarray
    block_window: tuple[str, ...]


def _window_ticks(
    window_starts: Mapping[str, datetime], *, first: int, last: int
) -> list[tuple[str, int]]:
    """The named window starts as (name, nanoseconds), checked and in time order."""
    windows = []
    for name, start in window_starts.items():
        if not isinstance(name, str) or not name or name == TRAIN_WINDOW:
            message = (
                f"window names must be non-empty strings other than {TRAIN_WINDOW!r} (the name of the rows "
                f"before the first window start), got {name!r}"
            )
            raise ValueError(message)
        if not isinstance(start, datetime):
            message = f"window_starts[{name!r}] must be a datetime, got {type(start).__name__}"
            raise TypeError(message)
        if start.tzinfo is None or start.utcoffset() is None:
            message = (
                f"window_starts[{name!r}] must be timezone-aware (bars are UTC), got naive "
                f"{start.isoformat()}"
            )
            raise ValueError(message)
        ticks = datetime_ticks(start)
        if not first <= ticks <= last:
            message = (
                f"window_starts[{name!r}] = {start.isoformat()} lies outside the feature bars "
                f"({iso_time(first)} to {iso_time(last)})"
            )
            raise ValueError(message)
        windows.append((name, ticks))
    return sorted(windows, key=lambda window: window[1])


def _schedule(
    features: pl.DataFrame, *, window_starts: Mapping[str, datetime], refit_every_sessions: int
) -> _Schedule:
    """Refit times from the feature timestamps (all symbols) and the window starts only."""
    grid = (
        features.select(pl.col("ts").dt.convert_time_zone("UTC").dt.cast_time_unit("ns")).unique().sort("ts")
    )
    ticks = utc_ticks(grid["ts"])
    session = grid["ts"].dt.convert_time_zone(str(EXCHANGE_TZ)).dt.date().to_physical().to_numpy()
    session_first = np.flatnonzero(np.concatenate([[True], session[1:] != session[:-1]]))
    session_refits = ticks[session_first[::refit_every_sessions]]
    windows = _window_ticks(window_starts, first=int(ticks[0]), last=int(ticks[-1]))
    # A start between two bars takes effect at the next bar: no label ends in between, same training set.
    window_refits = ticks[np.searchsorted(ticks, [start for _, start in windows], side="left")]
    for position in range(1, len(windows)):
        if window_refits[position] == window_refits[position - 1]:
            message = (
                f"windows {windows[position - 1][0]!r} and {windows[position][0]!r} start at the same "
                f"feature bar {iso_time(window_refits[position])}; give each window at least one bar"
            )
            raise ValueError(message)
    block_start = np.union1d(session_refits, window_refits).astype(np.int64)
    names = (TRAIN_WINDOW, *(name for name, _ in windows))
    window_of_block = np.searchsorted(window_refits, block_start, side="right")
    return _Schedule(block_start, tuple(names[int(index)] for index in window_of_block))


@dataclass(frozen=True)
class SymbolData:
    """One symbol's training plan and its feature matrix (float64, one row per bar of the plan)."""

    plan: SymbolTrainingPlan
    features: np.ndarray


def _symbol_plan(
    symbol: str, joined: pl.DataFrame, *, schedule: _Schedule, config: SignalConfig
) -> SymbolTrainingPlan:
    """Training plan of one symbol from its feature rows left-joined with its primary labels."""
    bar_ts = utc_ticks(joined["ts"])
    if joined["label"].null_count() == joined.height:
        message = (
            f"symbol {symbol}: features and labels share no timestamps at the primary horizon; are they "
            "computed from the same bars?"
        )
        raise ValueError(message)
    resolved = (joined["t1"].is_not_null() & joined["label"].is_not_null()).to_numpy()
    sample_bars = np.flatnonzero(resolved).astype(np.int64)
    sample_t1 = utc_ticks(joined["t1"].gather(sample_bars))
    sample_label = joined["label"].gather(sample_bars).cast(pl.Int8).to_numpy()

    block_start = schedule.block_start
    bar_block = (np.searchsorted(block_start, bar_ts, side="right") - 1).astype(np.int64)
    sample_block = bar_block[sample_bars]
    n_blocks = block_start.shape[0]
    bar_edges = np.searchsorted(bar_block, np.arange(n_blocks + 1), side="left")
    sample_edges = np.searchsorted(sample_block, np.arange(n_blocks + 1), side="left")
    block_train = tuple(np.flatnonzero(sample_t1 < start).astype(np.int64) for start in block_start)
    block_has_model = np.array(
        [
            train.shape[0] >= config.min_train_samples and np.unique(sample_label[train]).shape[0] >= 2
            for train in block_train
        ],
        dtype=bool,
    )
    return SymbolTrainingPlan(
        symbol=symbol,
        bar_ts=bar_ts,
        bar_block=bar_block,
        sample_bars=sample_bars,
        sample_t1=sample_t1,
        sample_label=sample_label,
        block_start=block_start,
        block_window=schedule.block_window,
        block_train=block_train,
        block_test=tuple(
            np.arange(sample_edges[k], sample_edges[k + 1], dtype=np.int64) for k in range(n_blocks)
        ),
        block_bars=tuple(np.arange(bar_edges[k], bar_edges[k + 1], dtype=np.int64) for k in range(n_blocks)),
        block_has_model=block_has_model,
    )


def prepare(
    features: pl.DataFrame,
    labels: pl.DataFrame,
    *,
    feature_columns: Sequence[str],
    config: SignalConfig,
    primary_horizon: int,
    window_starts: Mapping[str, datetime],
) -> dict[str, SymbolData]:
    """Check the inputs and build every symbol's plan and feature matrix (see :func:`training_plan`)."""
    columns = check_features(features, feature_columns)
    primary = primary_labels(labels, primary_horizon=primary_horizon)
    schedule = _schedule(
        features, window_starts=window_starts, refit_every_sessions=config.refit_every_sessions
    )
    label_symbols = set(primary["symbol"].unique().to_list())
    prepared: dict[str, SymbolData] = {}
    for symbol in sorted(str(value) for value in features["symbol"].unique().to_list()):
        if symbol not in label_symbols:
            message = f"symbol {symbol} has features but no labels at the primary horizon {primary_horizon}"
            raise ValueError(message)
        rows = (
            features.filter(pl.col("symbol") == symbol)
            .with_columns(pl.col("ts").dt.convert_time_zone("UTC").dt.cast_time_unit("ns"))
            .sort("ts")
        )
        symbol_labels = primary.filter(pl.col("symbol") == symbol).drop("symbol")
        joined = rows.select("ts", *columns).join(symbol_labels, on="ts", how="left")
        plan = _symbol_plan(symbol, joined, schedule=schedule, config=config)
        prepared[symbol] = SymbolData(plan, joined.select(columns).cast(pl.Float64).to_numpy())
    return prepared


def training_plan(
    features: pl.DataFrame,
    labels: pl.DataFrame,
    *,
    feature_columns: Sequence[str],
    config: SignalConfig = SignalConfig(),
    primary_horizon: int,
    window_starts: Mapping[str, datetime] = NO_WINDOWS,
) -> dict[str, SymbolTrainingPlan]:
    """The per-symbol plan :func:`~market.signal.walk_forward.causal_signal` fits by: samples, blocks, their
    training and predicted sets.

    Same arguments as :func:`~market.signal.walk_forward.causal_signal` (without the seed) and the same
    input errors, except that a last block without a model is not an error here; see the module docstring.
    """
    prepared = prepare(
        features,
        labels,
        feature_columns=feature_columns,
        config=config,
        primary_horizon=primary_horizon,
        window_starts=window_starts,
    )
    return {symbol: data.plan for symbol, data in prepared.items()}
