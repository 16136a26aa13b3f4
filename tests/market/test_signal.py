"""Tests for market/signal.py: no bar's signal comes from a model that trained on a sample overlapping it."""

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import pytest
import torch

from market.features import build_features, feature_names
from market.labeling import label_bars
from market.signal import (
    SIGNAL_COLUMNS,
    SignalConfig,
    SignalModel,
    SignalResult,
    SymbolTrainingPlan,
    out_of_fold_signal,
    plot_calibration,
    training_plan,
)
from market.synthetic import SyntheticMarketConfig, generate_market
from stairways.errors import ConfigError
from validation.splits import PurgedKFold

PRIMARY_HORIZON = 20
FEATURES = feature_names()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Martingale data: the agent's training window ends after session 16 of 24.
TRAIN_END = datetime(2025, 1, 27, 21, 0, tzinfo=UTC)


def _market(
    mode: Literal["martingale", "planted"], *, sessions: int, strength: float = 0.1, seed: int = 0
) -> tuple[pl.DataFrame, pl.DataFrame]:
    config = SyntheticMarketConfig(sessions=sessions, mode=mode, planted_strength=strength)
    bars = generate_market(config, seed=seed).bars
    return build_features(bars), label_bars(bars)


def _signal(
    features: pl.DataFrame,
    labels: pl.DataFrame,
    *,
    train_end: datetime | None = TRAIN_END,
    seed: int = 5,
    config: SignalConfig = SignalConfig(),
    feature_columns: Sequence[str] = FEATURES,
    primary_horizon: int = PRIMARY_HORIZON,
) -> SignalResult:
    return out_of_fold_signal(
        features,
        labels,
        feature_columns=feature_columns,
        config=config,
        primary_horizon=primary_horizon,
        train_end=train_end,
        seed=seed,
    )


def _plan(features: pl.DataFrame, labels: pl.DataFrame) -> dict[str, SymbolTrainingPlan]:
    return training_plan(
        features, labels, feature_columns=FEATURES, primary_horizon=PRIMARY_HORIZON, train_end=TRAIN_END
    )


@pytest.fixture(scope="module", autouse=True)
def single_torch_thread() -> Iterator[None]:
    """One torch thread, as the pipeline runs it (a second thread only contends on 2 shared cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def martingale() -> tuple[pl.DataFrame, pl.DataFrame]:
    return _market("martingale", sessions=24)


@pytest.fixture(scope="module")
def result(martingale: tuple[pl.DataFrame, pl.DataFrame]) -> SignalResult:
    features, labels = martingale
    return _signal(features, labels)


def _samples(features: pl.DataFrame, labels: pl.DataFrame, symbol: str) -> pl.DataFrame:
    """One symbol's samples, derived independently: training-window feature bars with a resolved label."""
    primary = labels.filter((pl.col("symbol") == symbol) & (pl.col("horizon") == PRIMARY_HORIZON))
    return (
        features.filter(pl.col("symbol") == symbol)
        .select("ts")
        .join(primary.select(pl.col("event_ts").alias("ts"), "t1", "label"), on="ts", how="inner")
        .filter(pl.col("t1").is_not_null() & (pl.col("ts") <= TRAIN_END))
        .sort("ts")
    )


def _ns(series: pl.Series) -> np.ndarray:
    return series.dt.cast_time_unit("ns").to_physical().to_numpy()


def test_every_feature_bar_gets_one_signal_in_range(
    martingale: tuple[pl.DataFrame, pl.DataFrame], result: SignalResult
) -> None:
    features, _ = martingale
    signal = result.signal
    assert signal.columns == list(SIGNAL_COLUMNS)
    assert signal.schema["signal"] == pl.Float64
    assert signal.schema["fold"] == pl.Int64
    assert signal.select("ts", "symbol").equals(features.sort("symbol", "ts").select("ts", "symbol"))
    assert signal["signal"].is_finite().all()
    assert signal["signal"].min() >= -1.0
    assert signal["signal"].max() <= 1.0
    in_window = signal["ts"] <= TRAIN_END
    assert (signal.filter(in_window)["source"] == "out_of_fold").all()
    assert signal.filter(in_window)["fold"].null_count() == 0
    assert (signal.filter(~in_window)["source"] == "forward").all()
    assert signal.filter(~in_window)["fold"].null_count() == signal.filter(~in_window).height > 0
    assert signal["signal"].std() > 0


def test_each_sample_is_predicted_by_the_fold_that_tests_it(
    martingale: tuple[pl.DataFrame, pl.DataFrame], result: SignalResult
) -> None:
    features, labels = martingale
    config = SignalConfig()
    for symbol in ("NVDA", "MSFT"):
        samples = _samples(features, labels, symbol)
        splitter = PurgedKFold(
            config.n_splits, times=samples["ts"], t1=samples["t1"], embargo_fraction=config.embargo_fraction
        )
        expected_fold = np.empty(samples.height, dtype=np.int64)
        for fold, (_, test) in enumerate(splitter.split(samples)):
            expected_fold[test] = fold
        folds = samples.select("ts").join(
            result.signal.filter(pl.col("symbol") == symbol), on="ts", how="left"
        )["fold"]
        np.testing.assert_array_equal(folds.to_numpy(), expected_fold)


def test_no_training_sample_of_a_bars_fold_overlaps_the_bar(
    martingale: tuple[pl.DataFrame, pl.DataFrame], result: SignalResult
) -> None:
    features, labels = martingale
    config = SignalConfig()
    for symbol in ("NVDA", "MSFT"):
        samples = _samples(features, labels, symbol)
        start, end = _ns(samples["ts"]), _ns(samples["t1"])
        splitter = PurgedKFold(
            config.n_splits, times=samples["ts"], t1=samples["t1"], embargo_fraction=config.embargo_fraction
        )
        plan = _plan(features, labels)[symbol]
        bars = result.signal.filter(pl.col("symbol") == symbol)
        bar_ts, bar_fold = _ns(bars["ts"]), bars["fold"].fill_null(-1).to_numpy()
        train_end_ns = _ns(pl.Series([TRAIN_END]))[0]
        for fold, (train, _) in enumerate(splitter.split(samples)):
            train = train[end[train] <= train_end_ns]  # labels reaching past train_end never train a model
            np.testing.assert_array_equal(plan.fold_train[fold], train)
            predicted = bar_ts[bar_fold == fold]
            assert predicted.size > 0
            column = predicted[:, None]
            inside = (start[train][None, :] <= column) & (column <= end[train][None, :])
            assert not inside.any(), f"{symbol} fold {fold}: a training sample's span covers a predicted bar"
        forward_t1 = plan.sample_t1[plan.forward_train]
        assert (forward_t1 <= train_end_ns).all()
        np.testing.assert_array_equal(plan.forward_train, np.flatnonzero(end <= train_end_ns))
        # Some training-window samples' labels do reach past train_end: the exclusion is not vacuous.
        assert (end > train_end_ns).any()


def test_labels_of_a_test_fold_do_not_change_its_signal(
    martingale: tuple[pl.DataFrame, pl.DataFrame], result: SignalResult
) -> None:
    features, labels = martingale
    nvda = _plan(features, labels)["NVDA"]
    test_ts = pl.Series(nvda.bar_ts[nvda.sample_bars[nvda.fold_test[2]]]).cast(pl.Datetime("ns", "UTC"))
    flipped = labels.with_columns(
        pl.when((pl.col("symbol") == "NVDA") & pl.col("event_ts").is_in(test_ts.implode()))
        .then(-pl.col("label"))
        .otherwise(pl.col("label"))
        .alias("label")
    )
    before = result.signal.filter(pl.col("symbol") == "NVDA")
    after = _signal(features, flipped).signal.filter(pl.col("symbol") == "NVDA")
    same_fold = (before["fold"] == 2).fill_null(False)
    np.testing.assert_array_equal(before.filter(same_fold)["signal"], after.filter(same_fold)["signal"])
    # The other folds and the forward model did train on those labels.
    other = ~same_fold
    assert not np.array_equal(before.filter(other)["signal"], after.filter(other)["signal"])


def test_labels_ending_after_train_end_reach_no_model(
    martingale: tuple[pl.DataFrame, pl.DataFrame], result: SignalResult
) -> None:
    features, labels = martingale
    late = pl.col("t1") > TRAIN_END
    flipped = labels.with_columns(
        pl.when(late).then(-pl.col("label")).otherwise(pl.col("label")).alias("label")
    )
    assert labels.filter(late & (pl.col("event_ts") <= TRAIN_END) & (pl.col("label") != 0)).height > 0
    assert _signal(features, flipped).signal.equals(result.signal)


def test_same_inputs_and_seed_give_identical_results(
    martingale: tuple[pl.DataFrame, pl.DataFrame], result: SignalResult
) -> None:
    features, labels = martingale
    again = _signal(features, labels)
    assert again.signal.equals(result.signal)
    assert json.dumps(again.cv_scores) == json.dumps(result.cv_scores)
    assert json.dumps(again.calibration) == json.dumps(result.calibration)
    assert json.dumps(again.meta_report) == json.dumps(result.meta_report)


def test_mlp_is_deterministic_per_seed_and_the_seed_matters(
    martingale: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    features, labels = martingale
    config = SignalConfig(model="mlp", hidden_units=8, epochs=30)

    def run(seed: int) -> pl.DataFrame:
        return _signal(features, labels, config=config, train_end=None, seed=seed).signal

    first = run(1)
    assert first.equals(run(1))
    assert not first["signal"].equals(run(2)["signal"])


def test_no_global_torch_setting_is_changed(martingale: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    features, labels = martingale
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    random_state = torch.random.get_rng_state()
    for model in ("logistic", "mlp"):
        config = SignalConfig(model=model, n_splits=2, epochs=5)
        _signal(features, labels, config=config, train_end=None)
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    assert torch.equal(torch.random.get_rng_state(), random_state)  # models draw from their own generator


def test_reports_are_consistent_and_json_ready(
    martingale: tuple[pl.DataFrame, pl.DataFrame], result: SignalResult, tmp_path: Path
) -> None:
    features, labels = martingale
    json.dumps({"cv": result.cv_scores, "calibration": result.calibration, "meta": result.meta_report})
    for symbol in ("NVDA", "MSFT"):
        scores = result.cv_scores["symbols"][symbol]
        assert len(scores["folds"]) == SignalConfig().n_splits
        assert sum(fold["n_test"] for fold in scores["folds"]) == scores["n_samples"]
        for fold in scores["folds"]:
            assert 0 < fold["n_train"] < scores["n_samples"]
            assert fold["baseline"]["balanced_accuracy"] == pytest.approx(1 / 3)
        calibration = result.calibration[symbol]
        for side in ("up", "down"):
            assert sum(row["count"] for row in calibration[side]["bins"]) == scores["n_samples"]
            assert 0.0 <= calibration[side]["brier"] <= 1.0
        # Meta-labels: side = sign of the OOF signal (0 skipped); 1 when the label equals the side.
        sided = (
            _samples(features, labels, symbol)
            .join(result.signal.filter(pl.col("symbol") == symbol), on="ts", how="left")
            .filter(pl.col("signal") != 0)
        )
        hits = (sided["label"].cast(pl.Float64) == sided["signal"].sign()).to_numpy()
        meta = result.meta_report[symbol]
        assert meta["threshold"] == 0.5
        assert meta["support"] == sided.height
        assert meta["base_rate"] == pytest.approx(hits.mean())
        assert meta["skipped"] is None
        for name in ("precision", "recall"):
            assert meta[name] is None or 0.0 <= meta[name] <= 1.0
    assert result.cv_scores["log_loss"] == result.cv_scores["mean"]["model"]["log_loss"]
    assert result.cv_scores["baseline_accuracy"] == result.cv_scores["mean"]["baseline"]["accuracy"]
    supports = [result.meta_report[symbol]["support"] for symbol in ("NVDA", "MSFT")]
    assert result.meta_report["support"] == sum(supports)
    assert result.calibration["pooled"]["n_samples"] == sum(
        result.cv_scores["symbols"][symbol]["n_samples"] for symbol in ("NVDA", "MSFT")
    )
    path = plot_calibration(result, tmp_path / "calibration.png")
    content = path.read_bytes()
    assert content.startswith(PNG_SIGNATURE)
    assert len(content) > 10_000


def test_martingale_signal_has_no_predictive_power(result: SignalResult) -> None:
    # Honest observation: the 3-class model can predict *whether* a barrier is touched (volatility clusters
    # and the intraday U-shape outruns the EWM target), so its log loss may beat the prior; the *sign* is
    # unpredictable, and its accuracy does not beat always predicting the majority class.
    for symbol in ("NVDA", "MSFT"):
        oof = result.cv_scores["symbols"][symbol]["out_of_fold"]
        assert abs(oof["signal_label_correlation"]) < 0.12
        assert 0.42 < oof["directional_accuracy"] < 0.58
        assert oof["model"]["accuracy"] < oof["baseline"]["accuracy"] + 0.01


def test_planted_signal_is_found_on_the_planted_symbol_only() -> None:
    # The planted block-return signal (strength 0.5, block 10 bars) on NVDA is visible to momentum_10, the
    # 10-bar past return. With the default strength 0.1 the OOF signal shows no measurable edge at this size.
    features, labels = _market("planted", sessions=24, strength=0.5, seed=2)
    planted = _signal(features, labels, train_end=None).cv_scores["symbols"]
    nvda = planted["NVDA"]["out_of_fold"]
    assert nvda["signal_label_correlation"] > 0.15
    assert nvda["directional_accuracy"] > 0.6
    assert nvda["model"]["log_loss"] < nvda["baseline"]["log_loss"] - 0.02
    assert abs(planted["MSFT"]["out_of_fold"]["signal_label_correlation"]) < 0.12


def test_features_and_labels_without_common_timestamps_are_refused(
    martingale: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    features, labels = martingale
    shift = pl.duration(days=400)
    shifted = labels.with_columns(pl.col("event_ts") + shift, pl.col("t1") + shift)
    with pytest.raises(ValueError, match="share no timestamps"):
        _signal(features, shifted, train_end=None)


def test_missing_feature_columns_are_a_config_error(martingale: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    features, labels = martingale
    with pytest.raises(ConfigError, match=r"\['momentum_99'\] are not in features"):
        _signal(features, labels, feature_columns=[*FEATURES, "momentum_99"])


def test_fewer_samples_than_folds_is_a_config_error(martingale: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    features, labels = martingale
    train_end = labels.filter(pl.col("symbol") == "MSFT")["event_ts"][2]
    message = r"MSFT: 3 labelled sample\(s\) in the training window, fewer than n_splits=5"
    with pytest.raises(ConfigError, match=message):
        _signal(features, labels, train_end=train_end)


def test_a_single_class_is_a_config_error(martingale: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    features, labels = martingale
    constant = labels.with_columns(pl.lit(0, dtype=pl.Int8).alias("label"))
    with pytest.raises(ConfigError, match="every training sample has label 0"):
        _signal(features, constant)


def test_primary_horizon_missing_from_labels_is_a_config_error(
    martingale: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    features, labels = martingale
    message = r"no rows at primary_horizon 30 \(horizons present: \[10, 20, 50\]\)"
    with pytest.raises(ConfigError, match=message):
        _signal(features, labels, primary_horizon=30)


def test_naive_train_end_is_refused(martingale: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    features, labels = martingale
    with pytest.raises(ValueError, match="timezone-aware"):
        _signal(features, labels, train_end=TRAIN_END.replace(tzinfo=None))


def _forward_rows(result: SignalResult, features: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The validation-window feature rows and the signal the torch forward model gave them."""
    forward = result.signal.filter(pl.col("source") == "forward")
    rows = features.join(forward.select("ts", "symbol"), on=["ts", "symbol"], how="semi")
    return rows, forward


@pytest.mark.parametrize("model", ["logistic", "mlp"])
def test_forward_model_reproduces_the_torch_forward_signal(
    martingale: tuple[pl.DataFrame, pl.DataFrame], result: SignalResult, model: str
) -> None:
    features, labels = martingale
    if model == "logistic":
        fitted = result
    else:
        fitted = _signal(
            features, labels, config=SignalConfig(model="mlp", hidden_units=8, epochs=30, n_splits=2)
        )
    rows, forward = _forward_rows(fitted, features)
    assert rows.height > 1000
    predicted = fitted.forward_model.predict(rows)
    assert predicted.columns == ["ts", "symbol", "signal"]
    assert predicted.select("ts", "symbol").equals(forward.select("ts", "symbol"))
    difference = np.abs(predicted["signal"].to_numpy() - forward["signal"].to_numpy())
    assert difference.max() < 1e-9
    assert fitted.forward_model.kind == model
    expected_layers = 1 if model == "logistic" else 2
    assert all(len(weights.weights) == expected_layers for weights in fitted.forward_model.symbols.values())


def test_forward_model_round_trips_through_json(
    martingale: tuple[pl.DataFrame, pl.DataFrame], result: SignalResult
) -> None:
    features, _ = martingale
    text = json.dumps(result.forward_model.to_dict())
    restored = SignalModel.from_dict(json.loads(text))
    assert restored.feature_columns == tuple(FEATURES)
    assert sorted(restored.symbols) == ["MSFT", "NVDA"]
    assert restored.predict(features).equals(result.forward_model.predict(features))
    assert json.dumps(restored.to_dict()) == text


def test_forward_model_is_fitted_without_a_forward_window(
    martingale: tuple[pl.DataFrame, pl.DataFrame], result: SignalResult
) -> None:
    features, labels = martingale
    everything = _signal(features, labels, train_end=None, config=SignalConfig(n_splits=2))
    assert everything.signal.filter(pl.col("source") == "forward").height == 0
    predicted = everything.forward_model.predict(features).get_column("signal").to_numpy()
    assert predicted.shape[0] == features.height
    assert np.all(np.abs(predicted) <= 1.0)
    # It trained on more samples than the train_end-limited forward model, so its weights differ.
    first = everything.forward_model.symbols["NVDA"].weights[0]
    assert not np.array_equal(first, result.forward_model.symbols["NVDA"].weights[0])


def test_forward_model_refuses_unknown_symbols_missing_columns_and_bad_dicts(
    martingale: tuple[pl.DataFrame, pl.DataFrame], result: SignalResult
) -> None:
    features, _ = martingale
    model = result.forward_model
    renamed = features.with_columns(pl.col("symbol").replace({"MSFT": "AAPL"}))
    with pytest.raises(ValueError, match=r"no weights for symbol\(s\) \['AAPL'\]"):
        model.predict(renamed)
    with pytest.raises(ConfigError, match="not in features"):
        model.predict(features.drop(FEATURES[0]))
    broken = model.to_dict()
    broken["symbols"]["NVDA"]["layers"][0]["bias"] = [0.0, 0.0]
    with pytest.raises(ValueError, match="layer 0"):
        SignalModel.from_dict(broken)
    with pytest.raises(ValueError, match="malformed"):
        SignalModel.from_dict({"format_version": 1, "kind": "logistic"})
