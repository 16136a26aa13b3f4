"""Tests for validation/splits.py: purging/embargo properties, walk-forward and CPCV path assembly."""

import datetime
import itertools
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from validation.splits import CombinatorialPurgedKFold, PurgedKFold, walk_forward

OPEN = math.inf


@st.composite
def sample_spans(
    draw: st.DrawFn, min_size: int = 2, max_size: int = 60
) -> tuple[list[int], list[int | None]]:
    """Non-decreasing integer starts (ties allowed) and label ends t1 >= start, some open-ended (None)."""
    n = draw(st.integers(min_size, max_size))
    steps = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    starts = list(itertools.accumulate(steps))
    horizons = draw(st.lists(st.integers(0, 12), min_size=n, max_size=n))
    open_ended = draw(st.lists(st.integers(0, 7).map(lambda x: x == 0), min_size=n, max_size=n))
    ends: list[int | None] = [
        None if o else s + h for s, h, o in zip(starts, horizons, open_ended, strict=True)
    ]
    return starts, ends


def end_value(end: int | None) -> float:
    return OPEN if end is None else float(end)


def overlaps(start_a: float, end_a: float, start_b: float, end_b: float) -> bool:
    return start_a <= end_b and start_b <= end_a


def expected_train(
    starts: list[int], ends: list[int | None], test_blocks: list[list[int]], embargo: int
) -> list[int]:
    """Independent statement of the purge + embargo rule, one sample and one test block at a time."""
    test = {i for block in test_blocks for i in block}
    excluded = set(test)
    for block in test_blocks:
        window_start = starts[block[0]]
        window_end = max(end_value(ends[i]) for i in block)
        after = [i for i in range(len(starts)) if starts[i] > window_end]
        excluded |= set(after[:embargo])
        for i in range(len(starts)):
            if overlaps(starts[i], end_value(ends[i]), window_start, window_end):
                excluded.add(i)
    return [i for i in range(len(starts)) if i not in excluded]


def assert_no_leak(
    train: np.ndarray, test_blocks: list[list[int]], starts: list[int], ends: list[int | None], embargo: int
) -> None:
    """No training span overlaps a test span; `embargo` samples separate each test window from training."""
    for i in train:
        for block in test_blocks:
            for j in block:
                assert not overlaps(starts[i], end_value(ends[i]), starts[j], end_value(ends[j]))
            window_end = max(end_value(ends[j]) for j in block)
            if starts[i] > window_end:
                between = sum(1 for k in range(i) if starts[k] > window_end)
                assert between >= embargo


def time_series(values: Sequence[int | None]) -> pl.Series:
    return pl.Series("t", values, dtype=pl.Int64)


# ------------------------------------------------------------------------------------------------------------
# PurgedKFold
# ------------------------------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    spans=sample_spans(), n_splits=st.integers(2, 6), embargo_fraction=st.sampled_from([0.0, 0.01, 0.05, 0.2])
)
def test_purged_kfold_never_leaks_and_covers_every_sample_once(
    spans: tuple[list[int], list[int | None]], n_splits: int, embargo_fraction: float
) -> None:
    starts, ends = spans
    if len(starts) < n_splits:
        return
    cv = PurgedKFold(
        n_splits, times=time_series(starts), t1=time_series(ends), embargo_fraction=embargo_fraction
    )
    embargo = math.ceil(round(embargo_fraction * len(starts), 9))
    assert cv.embargo == embargo
    splits = list(cv.split(np.zeros((len(starts), 3))))
    assert len(splits) == cv.get_n_splits() == n_splits
    tested = np.concatenate([test for _, test in splits])
    np.testing.assert_array_equal(np.sort(tested), np.arange(len(starts)))  # each sample tested exactly once
    for train, test in splits:
        assert train.dtype == np.int64 and test.dtype == np.int64
        np.testing.assert_array_equal(test, np.arange(test[0], test[-1] + 1))  # contiguous
        assert not set(train) & set(test)
        assert_no_leak(train, [test.tolist()], starts, ends, embargo)
        assert train.tolist() == expected_train(starts, ends, [test.tolist()], embargo)


def test_purged_kfold_hand_checked() -> None:
    times = np.arange(20)
    t1 = np.minimum(times + 3, 19)
    cv = PurgedKFold(4, times=times, t1=t1, embargo_fraction=0.1)
    splits = [(train.tolist(), test.tolist()) for train, test in cv.split(times)]
    # Fold 2 tests 5..9 (window [5, 12]): 2-4 end inside it, 10-12 start inside it, 13-14 are the embargo.
    assert splits[1] == ([0, 1, 15, 16, 17, 18, 19], [5, 6, 7, 8, 9])
    assert splits[0] == (list(range(10, 20)), [0, 1, 2, 3, 4])
    assert splits[3] == (list(range(12)), [15, 16, 17, 18, 19])


def test_purged_kfold_purges_label_ending_exactly_at_test_start() -> None:
    times = np.arange(10)
    t1 = times + 1  # label of sample 4 ends at 5, the first test start of fold 2
    cv = PurgedKFold(2, times=times, t1=t1, embargo_fraction=0.0)
    train, test = list(cv.split(times))[1]
    assert test.tolist() == [5, 6, 7, 8, 9]
    assert 4 not in train and train.tolist() == [0, 1, 2, 3]


def test_open_ended_label_overlaps_everything_after_it() -> None:
    times = np.arange(10)
    t1 = pl.Series([1, 2, 3, None, 5, 6, 7, 8, 9, 9])
    folds = list(PurgedKFold(5, times=times, t1=t1, embargo_fraction=0.0).split(times))
    assert 3 in folds[0][0]  # the open label starts after fold 0's window: no overlap
    assert all(3 not in train for train, _ in folds[1:])  # but it overlaps every later test window
    train, test = folds[1]  # test 2..3: window end is open, so everything after it is purged
    assert test.tolist() == [2, 3] and train.tolist() == [0]


def test_datetime_inputs_in_several_containers_agree() -> None:
    times = pl.datetime_range(
        datetime.datetime(2024, 1, 2, 14, 30),
        datetime.datetime(2024, 1, 2, 15, 19),
        "1m",
        eager=True,
        time_unit="ns",
        time_zone="UTC",
    )
    t1 = times.shift(-3).fill_null(times[-1])
    reference = [
        (a.tolist(), b.tolist()) for a, b in PurgedKFold(5, times=times, t1=t1).split(np.zeros(len(times)))
    ]
    as_pandas = PurgedKFold(5, times=times.to_pandas(), t1=pd.DatetimeIndex(t1.to_list()))
    assert [(a.tolist(), b.tolist()) for a, b in as_pandas.split(np.zeros(len(times)))] == reference
    as_integers = PurgedKFold(5, times=np.arange(50), t1=np.minimum(np.arange(50) + 3, 49))
    assert [(a.tolist(), b.tolist()) for a, b in as_integers.split(np.zeros(50))] == reference


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"times": np.arange(5), "t1": np.arange(4)}, "align"),
        ({"times": np.arange(5), "t1": np.arange(5) - 1}, "precedes"),
        ({"times": np.array([0, 2, 1, 3, 4]), "t1": np.array([5, 5, 5, 5, 5])}, "sorted"),
        ({"times": np.array([0.0, np.nan, 2, 3, 4]), "t1": np.full(5, 9.0)}, "null"),
        ({"times": np.arange(5), "t1": np.arange(5), "embargo_fraction": 1.0}, "embargo_fraction"),
        ({"times": np.arange(5), "t1": np.arange(5), "n_splits": 1}, "n_splits"),
        ({"times": np.arange(3), "t1": np.arange(3), "n_splits": 4}, "at least"),
        ({"times": np.arange(5), "t1": pl.Series([datetime.datetime(2024, 1, 1)] * 5)}, "same kind"),
        (
            {
                "times": pl.Series([datetime.datetime(2024, 1, 1)] * 2).dt.replace_time_zone("UTC"),
                "t1": pl.Series([datetime.datetime(2024, 1, 1)] * 2),
                "n_splits": 2,
            },
            "same kind",
        ),
    ],
)
def test_purged_kfold_rejects_misaligned_inputs(kwargs: dict[str, Any], match: str) -> None:
    arguments = {"n_splits": 2} | kwargs
    n_splits = arguments.pop("n_splits")
    with pytest.raises(ValueError, match=match):
        PurgedKFold(n_splits, **arguments)


def test_split_rejects_x_of_another_length() -> None:
    cv = PurgedKFold(2, times=np.arange(6), t1=np.arange(6))
    with pytest.raises(ValueError, match="row"):
        list(cv.split(np.zeros(5)))


def test_works_as_scikit_learn_cv() -> None:
    model_selection = pytest.importorskip("sklearn.model_selection")
    dummy = pytest.importorskip("sklearn.dummy")
    n = 60
    X = np.random.default_rng(0).normal(size=(n, 2))
    y = np.arange(n) % 2
    cv = PurgedKFold(3, times=np.arange(n), t1=np.arange(n) + 2, embargo_fraction=0.05)
    scores = model_selection.cross_val_score(dummy.DummyClassifier(), X, y, cv=cv)
    assert scores.shape == (3,)


# ------------------------------------------------------------------------------------------------------------
# Walk-forward
# ------------------------------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    spans=sample_spans(min_size=10, max_size=80),
    n_splits=st.integers(1, 4),
    purge_bars=st.integers(0, 6),
    rolling=st.booleans(),
)
def test_walk_forward_trains_on_the_past_only(
    spans: tuple[list[int], list[int | None]], n_splits: int, purge_bars: int, rolling: bool
) -> None:
    starts, ends = spans
    mode: Literal["expanding", "rolling"] = "rolling" if rolling else "expanding"
    try:
        splits = list(
            walk_forward(
                time_series(starts), time_series(ends), n_splits=n_splits, mode=mode, purge_bars=purge_bars
            )
        )
    except ValueError as error:
        assert "training" in str(error) or "too few" in str(error)
        return
    test_size = len(starts) // (n_splits + 1)
    assert len(splits) == n_splits
    previous_test_end = len(starts) - n_splits * test_size
    rolling_size = len(starts) - n_splits * test_size - purge_bars  # default: what the first block has
    for train, test in splits:
        assert test[0] == previous_test_end and len(test) == test_size
        previous_test_end = test[-1] + 1
        assert train.size > 0 and train.max() < test[0] - purge_bars
        assert_no_leak(train, [test.tolist()], starts, ends, embargo=0)
        train_end = test[0] - purge_bars
        window = range(0 if mode == "expanding" else train_end - rolling_size, train_end)
        window_end = max(end_value(ends[j]) for j in test)
        kept = [i for i in window if not overlaps(starts[i], end_value(ends[i]), starts[test[0]], window_end)]
        assert train.tolist() == kept


def test_walk_forward_hand_checked() -> None:
    times = np.arange(20)
    t1 = np.minimum(times + 3, 19)
    expanding = [(a.tolist(), b.tolist()) for a, b in walk_forward(times, t1, n_splits=3, purge_bars=3)]
    assert expanding == [
        ([0, 1], [5, 6, 7, 8, 9]),
        ([0, 1, 2, 3, 4, 5, 6], [10, 11, 12, 13, 14]),
        (list(range(12)), [15, 16, 17, 18, 19]),
    ]
    rolling = [
        (a.tolist(), b.tolist())
        for a, b in walk_forward(times, t1, n_splits=3, purge_bars=0, mode="rolling", train_size=4)
    ]
    # purge_bars=0 still purges by label overlap: sample 4's label ends at 7, inside the first test block.
    assert rolling[0] == ([1], [5, 6, 7, 8, 9])
    assert rolling[1] == ([6], [10, 11, 12, 13, 14])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"purge_bars": -1}, "purge_bars"),
        ({"purge_bars": 0, "mode": "sliding"}, "mode"),
        ({"purge_bars": 0, "train_size": 3}, "rolling"),
        ({"purge_bars": 0, "mode": "rolling", "train_size": 50}, "exceeds"),
        ({"purge_bars": 20}, "no training"),
        ({"purge_bars": 0, "n_splits": 0}, "n_splits"),
    ],
)
def test_walk_forward_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    arguments = {"n_splits": 3} | kwargs
    with pytest.raises(ValueError, match=match):
        walk_forward(np.arange(20), np.arange(20), **arguments)


def test_walk_forward_reports_fold_emptied_by_purging() -> None:
    times = np.arange(20)
    t1 = np.full(20, 19)  # every label runs to the end: nothing can train
    with pytest.raises(ValueError, match="no training samples left"):
        walk_forward(times, t1, n_splits=2, purge_bars=1)


# ------------------------------------------------------------------------------------------------------------
# Combinatorial purged CV
# ------------------------------------------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(
    spans=sample_spans(min_size=8, max_size=50),
    n_groups=st.integers(2, 8),
    data=st.data(),
    embargo_fraction=st.sampled_from([0.0, 0.02, 0.1]),
)
def test_cpcv_counts_paths_and_never_leaks(
    spans: tuple[list[int], list[int | None]], n_groups: int, data: st.DataObject, embargo_fraction: float
) -> None:
    starts, ends = spans
    n_test_groups = data.draw(st.integers(1, n_groups - 1))
    cv = CombinatorialPurgedKFold(
        n_groups,
        n_test_groups,
        times=time_series(starts),
        t1=time_series(ends),
        embargo_fraction=embargo_fraction,
    )
    n_splits = math.comb(n_groups, n_test_groups)
    assert cv.get_n_splits() == n_splits
    assert cv.n_paths == n_splits * n_test_groups // n_groups
    groups = [g.tolist() for g in cv.group_indices()]
    splits = list(cv.split(np.zeros(len(starts))))
    assert len(splits) == n_splits
    times_tested = np.zeros(len(starts), dtype=int)
    for (train, test), combination in zip(splits, cv.test_groups(), strict=True):
        blocks = [groups[g] for g in combination]
        assert test.tolist() == [i for block in blocks for i in block]
        times_tested[test] += 1
        assert_no_leak(train, blocks, starts, ends, cv.embargo)
        assert train.tolist() == expected_train(starts, ends, blocks, cv.embargo)
    assert (times_tested == math.comb(n_groups - 1, n_test_groups - 1)).all()

    paths = cv.paths()
    assert paths.shape == (cv.n_paths, n_groups)
    for path in paths:
        for group, split_index in enumerate(path):
            assert group in cv.test_groups()[split_index]  # the split really tested that group
    used = sorted((int(s), g) for path in paths for g, s in enumerate(path))
    assert used == sorted((s, g) for s, combo in enumerate(cv.test_groups()) for g in combo)  # each once


def test_cpcv_default_paths_hand_checked() -> None:
    cv = CombinatorialPurgedKFold(6, 2, times=np.arange(60), t1=np.arange(60), embargo_fraction=0.0)
    assert cv.get_n_splits() == 15 and cv.n_paths == 5
    # AFML fig. 12.2: group 0 is tested by splits 0-4 (pairs (0,1)..(0,5)); path p uses the p-th of them.
    np.testing.assert_array_equal(cv.paths()[:, 0], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(cv.paths()[0], [0, 0, 1, 2, 3, 4])
    np.testing.assert_array_equal(cv.paths()[4], [4, 8, 11, 13, 14, 14])


def test_cpcv_rejects_bad_groups() -> None:
    with pytest.raises(ValueError, match="smaller"):
        CombinatorialPurgedKFold(4, 4, times=np.arange(10), t1=np.arange(10))
    with pytest.raises(ValueError, match="at least"):
        CombinatorialPurgedKFold(6, 2, times=np.arange(5), t1=np.arange(5))
