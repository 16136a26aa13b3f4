"""Tests for market/signal/plan.py: refit times, blocks, windows, warm-up, which labels train which block."""

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest

from market.signal import TRAIN_WINDOW, SignalConfig, SignalResult, training_plan
from tests.market.signal.support import (
    EXPECTED_BLOCK_STARTS,
    FEATURES,
    PRIMARY_HORIZON,
    SELECTION_START,
    SYMBOLS,
    TEST_START,
)
from tests.market.signal.support import ns_ticks as _ns
from tests.market.signal.support import run_plan as _plan
from tests.market.signal.support import run_signal as _signal
from tests.market.signal.support import symbol_samples as _samples


def test_refits_are_at_every_fifth_session_and_each_window_start(
    martingale: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    features, labels = martingale
    # Independently: the first feature bar of every 5th New York session date.
    firsts = (
        features.group_by(pl.col("ts").dt.convert_time_zone("America/New_York").dt.date().alias("day"))
        .agg(pl.col("ts").min())
        .sort("day")
    )
    session_refits = firsts["ts"].gather_every(5).to_list()
    assert session_refits == [EXPECTED_BLOCK_STARTS[index] for index in (0, 1, 2, 4, 6)]
    plans = _plan(features, labels)
    for symbol in SYMBOLS:
        plan = plans[symbol]
        np.testing.assert_array_equal(plan.block_start, _ns(EXPECTED_BLOCK_STARTS))
        assert plan.block_window == ("train", "train", "train", "selection", "selection", "test", "test")
    # Fewer sessions between refits give more blocks; without windows only the session refits remain.
    dense = training_plan(
        features,
        labels,
        feature_columns=FEATURES,
        config=SignalConfig(refit_every_sessions=1),
        primary_horizon=PRIMARY_HORIZON,
    )["NVDA"]
    np.testing.assert_array_equal(dense.block_start, _ns(firsts["ts"]))
    assert set(dense.block_window) == {TRAIN_WINDOW}


def test_window_names_follow_the_window_starts(
    martingale: tuple[pl.DataFrame, pl.DataFrame], result: SignalResult
) -> None:
    features, labels = martingale
    expected = (
        pl.when(pl.col("ts") < SELECTION_START)
        .then(pl.lit("train"))
        .when(pl.col("ts") < TEST_START)
        .then(pl.lit("selection"))
        .otherwise(pl.lit("test"))
    )
    assert (result.signal["window"] == result.signal.select(expected).to_series()).all()
    assert result.signal["window"].unique(maintain_order=True).to_list() == ["train", "selection", "test"]
    assert list(result.cv_scores["windows"]) == ["train", "selection", "test"]
    # Without window starts every row is in the training window; the order of the mapping does not matter.
    plain = _signal(features, labels, window_starts={}, config=SignalConfig(refit_every_sessions=12))
    assert (plain.signal["window"] == TRAIN_WINDOW).all()
    assert list(plain.cv_scores["windows"]) == [TRAIN_WINDOW]
    reordered = {"test": TEST_START, "selection": SELECTION_START}
    assert _signal(features, labels, window_starts=reordered).signal.equals(result.signal)


def test_every_model_trains_only_on_labels_that_ended_before_its_block(
    martingale: tuple[pl.DataFrame, pl.DataFrame], result: SignalResult
) -> None:
    features, labels = martingale
    plans = _plan(features, labels)
    for symbol in SYMBOLS:
        plan = plans[symbol]
        samples = _samples(features, labels, symbol)
        sample_ts, sample_t1 = _ns(samples["ts"]), _ns(samples["t1"])
        np.testing.assert_array_equal(plan.bar_ts[plan.sample_bars], sample_ts)
        np.testing.assert_array_equal(plan.sample_t1, sample_t1)
        bars = result.signal.filter(pl.col("symbol") == symbol)
        np.testing.assert_array_equal(plan.bar_block, bars["block"].to_numpy())
        bar_ts = _ns(bars["ts"])
        covered = np.concatenate(plan.block_bars)
        np.testing.assert_array_equal(covered, np.arange(bar_ts.shape[0]))
        for block, start in enumerate(plan.block_start):
            train, predicted = plan.block_train[block], plan.block_bars[block]
            # Every sample whose label ended strictly before the block start, and nothing else.
            np.testing.assert_array_equal(train, np.flatnonzero(sample_t1 < start))
            assert (sample_t1[train] < start).all()
            assert (start <= bar_ts[predicted]).all()
            if block + 1 < plan.block_start.shape[0]:
                assert (bar_ts[predicted] < plan.block_start[block + 1]).all()
            np.testing.assert_array_equal(plan.bar_block[predicted], block)
            np.testing.assert_array_equal(
                plan.block_test[block], np.flatnonzero(np.isin(plan.sample_bars, predicted))
            )
            if block:
                assert np.isin(plan.block_train[block - 1], train).all()  # expanding
        # A label still open at the block start is exactly what the rule keeps out: they exist.
        last = plan.block_start[-1]
        assert ((sample_ts < last) & (sample_t1 >= last)).any()


def test_warmup_blocks_get_an_explicit_neutral_signal(
    martingale: tuple[pl.DataFrame, pl.DataFrame], result: SignalResult
) -> None:
    features, labels = martingale
    # Default: only block 0 (the first five sessions: no label ends before the first feature bar).
    warmup = result.signal.filter(pl.col("source") == "warmup")
    assert (warmup["block"] == 0).all()
    assert (warmup["signal"] == 0.0).all()
    assert warmup.height == result.signal.filter(pl.col("block") == 0).height > 0
    # A larger minimum turns the first blocks into warm-up too; exactly those with too few samples.
    config = SignalConfig(min_train_samples=4000, refit_every_sessions=5)
    plans = _plan(features, labels, config=config)
    strict = _signal(features, labels, config=config)
    for symbol in SYMBOLS:
        plan = plans[symbol]
        sizes = np.array([train.shape[0] for train in plan.block_train])
        np.testing.assert_array_equal(plan.block_has_model, sizes >= 4000)
        assert plan.block_has_model.tolist() == [False, False, False, True, True, True, True]
        rows = strict.signal.filter(pl.col("symbol") == symbol)
        expected_source = np.where(plan.block_has_model[plan.bar_block], "walk_forward", "warmup")
        np.testing.assert_array_equal(rows["source"].to_numpy(), expected_source)
        assert (rows.filter(pl.col("source") == "warmup")["signal"] == 0.0).all()
        blocks = strict.cv_scores["symbols"][symbol]["blocks"]
        assert [row["source"] for row in blocks] == ["warmup"] * 3 + ["walk_forward"] * 4
        assert all(row["model"] is None and row["baseline"] is None for row in blocks[:3])
    # The blocks with a model are fitted on the same samples either way: the same signal there.
    fitted = pl.col("block") >= 3
    assert strict.signal.filter(fitted)["signal"].equals(result.signal.filter(fitted)["signal"])


def test_features_and_labels_without_common_timestamps_are_refused(
    martingale: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    features, labels = martingale
    shift = pl.duration(days=400)
    shifted = labels.with_columns(pl.col("event_ts") + shift, pl.col("t1") + shift)
    with pytest.raises(ValueError, match="share no timestamps"):
        _signal(features, shifted)


@pytest.mark.parametrize(
    ("window_starts", "message"),
    [
        ({"test": TEST_START.replace(tzinfo=None)}, "timezone-aware"),
        ({"test": datetime(2025, 3, 1, tzinfo=UTC)}, "lies outside the feature bars"),
        ({"test": datetime(2024, 12, 31, tzinfo=UTC)}, "lies outside the feature bars"),
        ({"train": TEST_START}, "other than 'train'"),
        (
            {"a": datetime(2025, 1, 22, 14, 0, tzinfo=UTC), "b": SELECTION_START},
            "start at the same feature bar",
        ),
    ],
)
def test_bad_window_starts_are_refused(
    martingale: tuple[pl.DataFrame, pl.DataFrame], window_starts: dict[str, datetime], message: str
) -> None:
    features, labels = martingale
    with pytest.raises(ValueError, match=message):
        _signal(features, labels, window_starts=window_starts)
