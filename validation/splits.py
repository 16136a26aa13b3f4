"""Leakage-proof evaluation splits: purged k-fold, walk-forward and combinatorial purged CV (AFML ch. 7, 12).

Every sample ``i`` spans ``[times[i], t1[i]]``: it starts at its timestamp (the event) and its label is known
at ``t1[i]`` (the first barrier touch from :func:`market.triple_barrier.triple_barrier`). Conventions shared
by the splitters:

- Spans are closed intervals. A training sample is purged when its span overlaps a test window ``[first test
  start, latest test t1]``, i.e. ``times[i] <= window_end and t1[i] >= window_start``. This purges a sample
  whose label ends exactly at the test start (the book's snippet 7.3 keeps it): both read that bar.
- A null (or NaN) ``t1`` is an open-ended label: it overlaps everything from its start on.
- The embargo drops, after each test window, the ``ceil(embargo_fraction * n_samples)`` samples that follow it
  (the first samples starting after ``window_end``), as in snippet 7.3 where training resumes at
  ``searchsorted(times, window_end) + embargo``.
- ``times`` must be non-decreasing and ``t1 >= times``; times and t1 are both datetimes (same time-zone
  awareness) or both numbers (e.g. bar positions).

The splitters follow scikit-learn's protocol (``split(X, y=None, groups=None)`` yielding integer index arrays
and ``get_n_splits()``), so they can be passed as ``cv=`` without importing scikit-learn here. The
probability of backtest overfitting (PBO) of the best of several candidates is in :mod:`validation.pbo`.
"""

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import numpy as np
import pandas as pd
import polars as pl

from market.series import as_series

__all__ = [
    "CombinatorialPurgedKFold",
    "PurgedKFold",
    "walk_forward",
]

TimeInput: TypeAlias = pl.Series | pd.Series | pd.Index | np.ndarray | Sequence[Any]
Split: TypeAlias = tuple[np.ndarray, np.ndarray]

_INT64_MAX = np.iinfo(np.int64).max
# Absorbs binary rounding in ceil(fraction * n), e.g. 0.07 * 100 == 7.000000000000001.
_CEIL_TOLERANCE = 1e-9


# ------------------------------------------------------------------------------------------------------------
# Sample spans
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spans:
    """Sample start and end times as comparable arrays; an open-ended t1 is the dtype's maximum."""

    start: np.ndarray
    end: np.ndarray

    @property
    def size(self) -> int:
        return int(self.start.shape[0])


def _kind(series: pl.Series, *, what: str) -> str:
    dtype = series.dtype
    if isinstance(dtype, pl.Datetime):
        return "datetime-aware" if dtype.time_zone is not None else "datetime-naive"
    if dtype == pl.Date:
        return "datetime-naive"
    if dtype.is_integer():
        return "integer"
    if dtype.is_float():
        return "float"
    if dtype == pl.Null:
        return "null"
    message = f"{what} must hold datetimes or numbers, got {dtype}"
    raise ValueError(message)


def _spans(times: TimeInput, t1: TimeInput) -> _Spans:
    """Validate ``times``/``t1`` (see the module docstring) and return comparable arrays."""
    start_series = as_series(times, what="times", nan_to_null=True)
    end_series = as_series(t1, what="t1", nan_to_null=True)
    if start_series.dtype.is_float():
        start_series = start_series.fill_nan(None)
    if end_series.dtype.is_float():
        end_series = end_series.fill_nan(None)
    if start_series.len() != end_series.len():
        message = f"times has {start_series.len()} value(s) but t1 has {end_series.len()}; they must align"
        raise ValueError(message)
    if start_series.null_count():
        message = f"times has {start_series.null_count()} null value(s); every sample needs a start time"
        raise ValueError(message)
    start_kind = _kind(start_series, what="times")
    end_kind = _kind(end_series, what="t1")
    if end_kind == "null":
        end_kind = start_kind
        end_series = end_series.cast(start_series.dtype)
    numeric = {"integer", "float"}
    if start_kind != end_kind and not (start_kind in numeric and end_kind in numeric):
        message = f"times ({start_kind}) and t1 ({end_kind}) must be of the same kind"
        raise ValueError(message)

    if start_kind.startswith("datetime"):
        start = _datetime_ns(start_series)
        end = _datetime_ns(end_series)
        start_values = start.to_numpy().astype(np.int64)
        end_values = end.fill_null(_INT64_MAX).to_numpy().astype(np.int64)
    elif "float" in (start_kind, end_kind):
        start_values = start_series.cast(pl.Float64).to_numpy().astype(np.float64)
        end_values = end_series.cast(pl.Float64).fill_null(np.inf).to_numpy().astype(np.float64)
        if not np.isfinite(start_values).all():
            message = "times must be finite"
            raise ValueError(message)
    else:
        start_values = start_series.cast(pl.Int64).to_numpy().astype(np.int64)
        end_values = end_series.cast(pl.Int64).fill_null(_INT64_MAX).to_numpy().astype(np.int64)

    if start_values.shape[0] > 1:
        decreasing = np.flatnonzero(np.diff(start_values) < 0)
        if decreasing.size:
            message = (
                f"times must be sorted (non-decreasing); {decreasing.size} step(s) go backwards "
                f"(first at position {int(decreasing[0]) + 1})"
            )
            raise ValueError(message)
    before = np.flatnonzero(end_values < start_values)
    if before.size:
        message = f"t1 precedes times for {before.size} sample(s) (first at position {int(before[0])})"
        raise ValueError(message)
    return _Spans(start_values, end_values)


def _datetime_ns(series: pl.Series) -> pl.Series:
    if series.dtype == pl.Date:
        series = series.cast(pl.Datetime("ns"))
    return series.dt.cast_time_unit("ns").to_physical()


def _embargo_size(embargo_fraction: float, n_samples: int) -> int:
    return max(0, math.ceil(embargo_fraction * n_samples - _CEIL_TOLERANCE))


def _check_embargo_fraction(embargo_fraction: float) -> float:
    if isinstance(embargo_fraction, bool) or not isinstance(embargo_fraction, int | float | np.floating):
        message = f"embargo_fraction must be a number, got {type(embargo_fraction).__name__}"
        raise TypeError(message)
    if not 0.0 <= embargo_fraction < 1.0:
        message = f"embargo_fraction must be in [0, 1), got {embargo_fraction}"
        raise ValueError(message)
    return float(embargo_fraction)


def _check_int(value: int, *, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        message = f"{name} must be an integer >= {minimum}, got {value!r}"
        raise ValueError(message)
    return int(value)


def _n_samples(X: Any) -> int:
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) > 0:
        return int(shape[0])
    try:
        return len(X)
    except TypeError as e:
        message = f"X must have a length or a shape, got {type(X).__name__}"
        raise ValueError(message) from e


def _excluded_by_test_block(spans: _Spans, block: np.ndarray, embargo: int) -> np.ndarray:
    """Samples that must leave training because of one contiguous test block: purged or embargoed."""
    window_start = spans.start[block[0]]
    window_end = spans.end[block].max()
    excluded = (spans.start <= window_end) & (spans.end >= window_start)
    if embargo > 0:
        resume = int(np.searchsorted(spans.start, window_end, side="right"))
        excluded[resume : resume + embargo] = True
    return excluded


def _train_indices(spans: _Spans, test_blocks: Sequence[np.ndarray], embargo: int) -> np.ndarray:
    excluded = np.zeros(spans.size, dtype=bool)
    for block in test_blocks:
        excluded |= _excluded_by_test_block(spans, block, embargo)
        excluded[block] = True
    return np.flatnonzero(~excluded)


# ------------------------------------------------------------------------------------------------------------
# Splitters
# ------------------------------------------------------------------------------------------------------------


class _PurgedSplitter:
    """What the purged splitters share: the samples' label spans and the embargo they imply."""

    embargo_fraction: float
    _spans: _Spans

    @property
    def embargo(self) -> int:
        """Embargo length in samples: ``ceil(embargo_fraction * n_samples)``."""
        return _embargo_size(self.embargo_fraction, self._spans.size)


class PurgedKFold(_PurgedSplitter):
    """K-fold cross-validation with contiguous test folds, purging and an embargo (AFML snippet 7.3).

    Args:
        n_splits: number of contiguous test folds (``np.array_split`` sizes), at least 2.
        times: sample start times (the event timestamps), non-decreasing.
        t1: label end time per sample, aligned with ``times``; null means open-ended.
        embargo_fraction: embargo after each test window as a share of the samples, in [0, 1).
    """

    def __init__(
        self, n_splits: int = 5, *, times: TimeInput, t1: TimeInput, embargo_fraction: float = 0.01
    ) -> None:
        self.n_splits = _check_int(n_splits, name="n_splits", minimum=2)
        self.embargo_fraction = _check_embargo_fraction(embargo_fraction)
        self._spans = _spans(times, t1)
        if self._spans.size < self.n_splits:
            message = f"PurgedKFold needs at least n_splits={self.n_splits} samples, got {self._spans.size}"
            raise ValueError(message)

    def __repr__(self) -> str:
        return (
            f"PurgedKFold(n_splits={self.n_splits}, n_samples={self._spans.size}, "
            f"embargo_fraction={self.embargo_fraction})"
        )

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Number of splits (scikit-learn protocol); the arguments are ignored."""
        return self.n_splits

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[Split]:
        """Yield ``(train_idx, test_idx)`` int64 arrays; ``X`` must have one row per sample."""
        n_samples = _n_samples(X)
        if n_samples != self._spans.size:
            message = f"X has {n_samples} row(s) but times/t1 describe {self._spans.size} sample(s)"
            raise ValueError(message)
        embargo = self.embargo
        for test in np.array_split(np.arange(n_samples, dtype=np.int64), self.n_splits):
            yield _train_indices(self._spans, [test], embargo), test


def walk_forward(
    times: TimeInput,
    t1: TimeInput,
    *,
    n_splits: int,
    mode: Literal["expanding", "rolling"] = "expanding",
    train_size: int | None = None,
    test_size: int | None = None,
    purge_bars: int,
) -> Iterator[Split]:
    """Walk-forward splits: train on the past, test on the next block, with a purge gap between them.

    The last ``n_splits * test_size`` samples form ``n_splits`` consecutive test blocks (``test_size``
    defaults to ``n_samples // (n_splits + 1)``). Training for a block ends ``purge_bars`` samples before it;
    ``"expanding"`` starts at sample 0, ``"rolling"`` keeps the last ``train_size`` samples before the gap
    (default: as many as the first block has). Training samples whose span overlaps the test block are purged
    as well, so ``purge_bars`` should be at least the longest label horizon in bars.

    All splits are computed and validated before the iterator is returned.

    Raises:
        ValueError: bad sizes, ``train_size`` with ``"expanding"``, or a block left without training samples.
    """
    spans = _spans(times, t1)
    n_splits = _check_int(n_splits, name="n_splits", minimum=1)
    purge_bars = _check_int(purge_bars, name="purge_bars", minimum=0)
    if mode not in ("expanding", "rolling"):
        message = f"mode must be 'expanding' or 'rolling', got {mode!r}"
        raise ValueError(message)
    n_samples = spans.size
    if test_size is None:
        test_size = n_samples // (n_splits + 1)
        if test_size < 1:
            message = f"{n_samples} sample(s) are too few for {n_splits} walk-forward split(s)"
            raise ValueError(message)
    test_size = _check_int(test_size, name="test_size", minimum=1)
    first_test = n_samples - n_splits * test_size
    available = first_test - purge_bars
    if available < 1:
        message = (
            f"no training samples before the first test block: {n_samples} samples, {n_splits} block(s) of "
            f"{test_size}, purge_bars={purge_bars}"
        )
        raise ValueError(message)
    if mode == "expanding":
        if train_size is not None:
            message = "train_size applies to mode='rolling' only (an expanding window starts at sample 0)"
            raise ValueError(message)
    else:
        train_size = available if train_size is None else _check_int(train_size, name="train_size", minimum=1)
        if train_size > available:
            message = (
                f"train_size={train_size} exceeds the {available} sample(s) available before the first test "
                "block's purge gap"
            )
            raise ValueError(message)

    splits: list[Split] = []
    for fold in range(n_splits):
        test = np.arange(first_test + fold * test_size, first_test + (fold + 1) * test_size, dtype=np.int64)
        train_end = int(test[0]) - purge_bars
        train_start = 0 if mode == "expanding" else train_end - int(train_size)  # type: ignore[arg-type]
        candidates = np.arange(train_start, train_end, dtype=np.int64)
        purged = _excluded_by_test_block(spans, test, embargo=0)
        train = candidates[~purged[candidates]]
        if train.size == 0:
            message = (
                f"walk-forward block {fold} has no training samples left after purging label overlaps; "
                "lower purge_bars/n_splits or use shorter labels"
            )
            raise ValueError(message)
        splits.append((train, test))
    return iter(splits)


class CombinatorialPurgedKFold(_PurgedSplitter):
    """Combinatorial purged cross-validation, CPCV (AFML ch. 12).

    The samples form ``n_groups`` contiguous groups; every combination of ``n_test_groups`` groups is one
    split's test set (``C(n_groups, n_test_groups)`` splits, in ``itertools.combinations`` order). Training
    excludes the test groups, samples overlapping any test group's window, and an embargo after each test
    group.

    Each group is tested in ``C(n_groups - 1, n_test_groups - 1)`` splits, which assemble ``n_paths =
    C(n_groups, n_test_groups) * n_test_groups / n_groups`` backtest paths: path ``p`` takes group ``g``'s
    out-of-sample predictions from the ``p``-th split (in split order) that tests ``g``; see :meth:`paths`.
    """

    def __init__(
        self,
        n_groups: int = 6,
        n_test_groups: int = 2,
        *,
        times: TimeInput,
        t1: TimeInput,
        embargo_fraction: float = 0.01,
    ) -> None:
        self.n_groups = _check_int(n_groups, name="n_groups", minimum=2)
        self.n_test_groups = _check_int(n_test_groups, name="n_test_groups", minimum=1)
        if self.n_test_groups >= self.n_groups:
            message = f"n_test_groups ({n_test_groups}) must be smaller than n_groups ({n_groups})"
            raise ValueError(message)
        self.embargo_fraction = _check_embargo_fraction(embargo_fraction)
        self._spans = _spans(times, t1)
        if self._spans.size < self.n_groups:
            message = f"CPCV needs at least n_groups={self.n_groups} samples, got {self._spans.size}"
            raise ValueError(message)

    def __repr__(self) -> str:
        return (
            f"CombinatorialPurgedKFold(n_groups={self.n_groups}, n_test_groups={self.n_test_groups}, "
            f"n_samples={self._spans.size}, embargo_fraction={self.embargo_fraction})"
        )

    @property
    def n_paths(self) -> int:
        """Number of backtest paths, ``C(N, k) * k / N``."""
        return math.comb(self.n_groups - 1, self.n_test_groups - 1)

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Number of splits, ``C(n_groups, n_test_groups)``; the arguments are ignored."""
        return math.comb(self.n_groups, self.n_test_groups)

    def group_indices(self) -> list[np.ndarray]:
        """Sample indices of each contiguous group."""
        return np.array_split(np.arange(self._spans.size, dtype=np.int64), self.n_groups)

    def test_groups(self) -> list[tuple[int, ...]]:
        """The test groups of each split, in split order."""
        return list(itertools.combinations(range(self.n_groups), self.n_test_groups))

    def paths(self) -> np.ndarray:
        """Backtest-path assembly: ``paths()[p, g]`` is the split feeding group ``g`` on path ``p``.

        Shape ``(n_paths, n_groups)``. For each group, the splits that test it are taken in split order; the
        ``p``-th of them feeds path ``p``.
        """
        assembly = np.empty((self.n_paths, self.n_groups), dtype=np.int64)
        filled = np.zeros(self.n_groups, dtype=np.int64)
        for split_index, groups in enumerate(self.test_groups()):
            for group in groups:
                assembly[filled[group], group] = split_index
                filled[group] += 1
        return assembly

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[Split]:
        """Yield ``(train_idx, test_idx)`` int64 arrays for every combination of test groups."""
        n_samples = _n_samples(X)
        if n_samples != self._spans.size:
            message = f"X has {n_samples} row(s) but times/t1 describe {self._spans.size} sample(s)"
            raise ValueError(message)
        embargo = self.embargo
        group_indices = self.group_indices()
        for combination in self.test_groups():
            blocks = [group_indices[group] for group in combination]
            yield _train_indices(self._spans, blocks, embargo), np.concatenate(blocks)
