"""Tests for market/signal/walk_forward.py: causal_signal, causal at every bar, deterministic, honest."""

import json
from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from core.errors import ConfigError
from market.features import build_features
from market.labeling import label_bars
from market.signal import SIGNAL_COLUMNS, SignalConfig, SignalResult
from tests.market.signal.support import EXPECTED_BLOCK_STARTS, PRIMARY_HORIZON, SELECTION_START, SYMBOLS
from tests.market.signal.support import run_plan as _plan
from tests.market.signal.support import run_signal as _signal
from tests.market.signal.support import synthetic_market as _market

# ------------------------------------------------------------------------------------------------------------
# The signal frame
# ------------------------------------------------------------------------------------------------------------


def test_every_feature_bar_gets_one_signal_in_range(
    martingale: tuple[pl.DataFrame, pl.DataFrame], result: SignalResult
) -> None:
    features, _ = martingale
    signal = result.signal
    assert signal.columns == list(SIGNAL_COLUMNS)
    assert signal.schema["signal"] == pl.Float64
    assert signal.schema["block"] == pl.Int64
    assert signal.schema["source"] == signal.schema["window"] == pl.Utf8
    assert signal.select("ts", "symbol").equals(features.sort("symbol", "ts").select("ts", "symbol"))
    assert signal["signal"].is_finite().all()
    assert signal["signal"].min() >= -1.0
    assert signal["signal"].max() <= 1.0
    assert set(signal["source"].unique().to_list()) == {"warmup", "walk_forward"}
    assert signal.filter(pl.col("source") == "walk_forward")["signal"].std() > 0


# ------------------------------------------------------------------------------------------------------------
# Causality
# ------------------------------------------------------------------------------------------------------------


def test_labels_ending_at_or_after_the_last_refit_reach_no_model(
    martingale: tuple[pl.DataFrame, pl.DataFrame], result: SignalResult
) -> None:
    features, labels = martingale
    last_start = EXPECTED_BLOCK_STARTS[-1]
    late = pl.col("t1") >= last_start
    flipped = labels.with_columns(
        pl.when(late).then(-pl.col("label")).otherwise(pl.col("label")).alias("label")
    )
    # The strict rule is exercised: some labels end exactly at the refit bar and change when flipped.
    primary = labels.filter(pl.col("horizon") == PRIMARY_HORIZON)
    assert primary.filter((pl.col("t1") == last_start) & (pl.col("label") != 0)).height > 0
    again = _signal(features, flipped)
    assert again.signal.equals(result.signal)
    assert json.dumps(again.forward_model.to_dict()) == json.dumps(result.forward_model.to_dict())


def _perturbed_after(bars: pl.DataFrame, cut_ts: datetime, *, seed: int, scale: float) -> pl.DataFrame:
    """Every bar strictly after ``cut_ts`` with its prices and volume multiplied by random factors.

    Prices get a per-symbol random walk of log factors (so the perturbed path still looks like prices and
    the labels keep touching barriers) times a small independent factor per column; volume an independent
    factor. Bars at or before the cut keep factor 1.
    """
    rng = np.random.default_rng(seed)
    after = (bars["ts"] > cut_ts).to_numpy()

    def steps(size: float) -> pl.Series:
        return pl.Series(np.where(after, rng.normal(0.0, size, bars.height), 0.0))

    walk = bars.select(steps(scale).alias("step"), "symbol").select(
        pl.col("step").cum_sum().over("symbol")
    )["step"].to_numpy()
    changed = {
        column: bars[column].to_numpy() * np.exp(walk + steps(scale / 4).to_numpy())
        for column in ("open", "high", "low", "close")
    }
    changed["volume"] = bars["volume"].to_numpy() * np.exp(steps(0.5).to_numpy())
    # Keep the changed bars consistent (low <= open, close <= high): only rows after the cut move.
    prices = [changed["open"], changed["high"], changed["low"], changed["close"]]
    changed["high"] = np.maximum.reduce(prices)
    changed["low"] = np.minimum.reduce(prices)
    return bars.with_columns([pl.Series(name, values) for name, values in changed.items()])


def _assert_causal_at(
    bars: pl.DataFrame, result: SignalResult, cut_ts: datetime, *, seed: int, scale: float
) -> None:
    """Re-run features, labels and the signal on bars perturbed after ``cut_ts``: no row up to it moves."""
    perturbed = _perturbed_after(bars, cut_ts, seed=seed, scale=scale)
    moved = _signal(build_features(perturbed), label_bars(perturbed))
    up_to_cut = pl.col("ts") <= cut_ts
    assert result.signal.filter(up_to_cut).height > 0
    assert_frame_equal(moved.signal.filter(up_to_cut), result.signal.filter(up_to_cut), check_exact=True)
    # Not vacuous: the walk-forward rows after the cut see the new prices.
    after = (~up_to_cut) & (pl.col("source") == "walk_forward")
    assert not moved.signal.filter(after)["signal"].equals(result.signal.filter(after)["signal"])


@pytest.mark.parametrize(
    "cut_ts",
    [
        pytest.param(datetime(2025, 1, 14, 18, 0, tzinfo=UTC), id="train"),
        pytest.param(SELECTION_START, id="at-the-selection-refit"),
        pytest.param(datetime(2025, 1, 24, 16, 45, tzinfo=UTC), id="selection"),
        pytest.param(datetime(2025, 1, 27, 15, 30, tzinfo=UTC), id="an-hour-after-a-session-refit"),
        pytest.param(datetime(2025, 1, 30, 17, 3, tzinfo=UTC), id="one-bar-before-the-test-refit"),
        pytest.param(datetime(2025, 2, 4, 15, 10, tzinfo=UTC), id="test"),
    ],
)
def test_prices_after_a_time_do_not_change_any_signal_up_to_it(
    martingale_bars: pl.DataFrame, result: SignalResult, cut_ts: datetime
) -> None:
    _assert_causal_at(martingale_bars, result, cut_ts, seed=7, scale=0.002)


@settings(max_examples=3, deadline=None)
@given(cut_fraction=st.floats(0.0, 0.99), seed=st.integers(0, 2**32 - 1), scale=st.floats(0.0002, 0.003))
def test_prices_after_any_bar_do_not_change_any_signal_up_to_it(
    martingale_bars: pl.DataFrame, result: SignalResult, cut_fraction: float, seed: int, scale: float
) -> None:
    grid = result.signal["ts"].unique().sort()
    cut_ts = grid[int(cut_fraction * (grid.len() - 1))]
    _assert_causal_at(martingale_bars, result, cut_ts, seed=seed, scale=scale)


# ------------------------------------------------------------------------------------------------------------
# Determinism, the meta filter
# ------------------------------------------------------------------------------------------------------------


def test_same_inputs_and_seed_give_identical_results(
    martingale: tuple[pl.DataFrame, pl.DataFrame], result: SignalResult
) -> None:
    features, labels = martingale
    again = _signal(features, labels)
    assert again.signal.equals(result.signal)
    assert json.dumps(again.cv_scores) == json.dumps(result.cv_scores)
    assert json.dumps(again.calibration) == json.dumps(result.calibration)
    assert json.dumps(again.meta_report) == json.dumps(result.meta_report)
    assert json.dumps(again.forward_model.to_dict()) == json.dumps(result.forward_model.to_dict())


def test_meta_filter_without_enough_history_is_reported_as_skipped(
    martingale: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    features, labels = martingale
    # One walk-forward block only (the last): no earlier walk-forward samples train a meta filter.
    config = SignalConfig(refit_every_sessions=20)
    skipped = _signal(features, labels, config=config, window_starts={}).meta_report
    for symbol in SYMBOLS:
        assert skipped[symbol]["support"] == 0
        assert "min_train_samples=200" in skipped[symbol]["skipped"]
    assert skipped["pooled"]["support"] == 0
    assert skipped["pooled"]["precision"] is None


# ------------------------------------------------------------------------------------------------------------
# What the signal finds
# ------------------------------------------------------------------------------------------------------------


def test_martingale_signal_has_no_predictive_power(result: SignalResult) -> None:
    # Honest observation: the 3-class walk-forward model does not even beat the class prior's log loss here
    # (early blocks overfit the few, heavily overlapping samples), and the sign is unpredictable.
    for symbol in SYMBOLS:
        out_of_sample = result.cv_scores["symbols"][symbol]["out_of_sample"]
        assert abs(out_of_sample["signal_label_correlation"]) < 0.08
        assert 0.44 < out_of_sample["directional_accuracy"] < 0.56
        assert out_of_sample["model"]["accuracy"] < out_of_sample["baseline"]["accuracy"] + 0.01
    for window in result.cv_scores["windows"].values():
        assert abs(window["signal_label_correlation"]) < 0.1


def test_planted_signal_is_found_walk_forward_on_the_planted_symbol_only() -> None:
    # The planted block-return signal (strength 0.7, block 10 bars) on NVDA is visible to momentum_10, the
    # 10-bar past return; walk-forward the model still beats the prior's log loss on it.
    features, labels = _market("planted", sessions=24, strength=0.7, seed=2)
    planted = _signal(features, labels, window_starts={}).cv_scores["symbols"]
    nvda = planted["NVDA"]["out_of_sample"]
    assert nvda["signal_label_correlation"] > 0.3
    assert nvda["directional_accuracy"] > 0.62
    assert nvda["model"]["log_loss"] < nvda["baseline"]["log_loss"] - 0.03
    assert abs(planted["MSFT"]["out_of_sample"]["signal_label_correlation"]) < 0.08


# ------------------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------------------


def test_a_single_class_is_a_config_error(martingale: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    features, labels = martingale
    constant = labels.with_columns(pl.lit(0, dtype=pl.Int8).alias("label"))
    with pytest.raises(ConfigError, match="every training sample of the last block .* has label 0"):
        _signal(features, constant)


def test_a_last_block_without_a_model_is_a_config_error(
    martingale: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    features, labels = martingale
    config = SignalConfig(min_train_samples=10**6)
    message = (
        r"symbol MSFT: the last block \(from 2025-02-03T14:30:00\+00:00\) has \d+ sample\(s\) whose labels "
        r"ended before it, fewer than min_train_samples=1000000"
    )
    with pytest.raises(ConfigError, match=message):
        _signal(features, labels, config=config)
    # The plan itself is still available, all warm-up.
    plan = _plan(features, labels, config=config)["MSFT"]
    assert not plan.block_has_model.any()
