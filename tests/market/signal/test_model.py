"""Tests for market/signal/model.py: the forward model reproduces the last block and round-trips."""

import json

import numpy as np
import polars as pl
import pytest

from core.errors import ConfigError
from market.signal import SignalConfig, SignalModel, SignalResult
from tests.market.signal.support import FEATURES, SYMBOLS
from tests.market.signal.support import run_signal as _signal


@pytest.mark.parametrize("model", ["logistic", "mlp"])
def test_forward_model_reproduces_the_last_blocks_torch_signal(
    martingale: tuple[pl.DataFrame, pl.DataFrame], result: SignalResult, model: str
) -> None:
    features, labels = martingale
    if model == "logistic":
        fitted = result
    else:
        config = SignalConfig(model="mlp", hidden_units=8, epochs=30, refit_every_sessions=10)
        fitted = _signal(features, labels, config=config)
    last = fitted.signal.filter(pl.col("block") == fitted.signal["block"].max())
    assert (last["source"] == "walk_forward").all()
    rows = features.join(last.select("ts", "symbol"), on=["ts", "symbol"], how="semi")
    assert rows.height > 1000
    predicted = fitted.forward_model.predict(rows)
    assert predicted.columns == ["ts", "symbol", "signal"]
    assert predicted.select("ts", "symbol").equals(last.select("ts", "symbol"))
    difference = np.abs(predicted["signal"].to_numpy() - last["signal"].to_numpy())
    assert difference.max() < 1e-9
    assert fitted.forward_model.kind == model
    expected_layers = 1 if model == "logistic" else 2
    assert all(len(weights.weights) == expected_layers for weights in fitted.forward_model.symbols.values())
    # Earlier blocks had other models: the forward model does not reproduce them.
    earlier = fitted.signal.filter(pl.col("block") == 1)
    earlier_rows = features.join(earlier.select("ts", "symbol"), on=["ts", "symbol"], how="semi")
    replayed = fitted.forward_model.predict(earlier_rows)["signal"].to_numpy()
    assert np.abs(replayed - earlier["signal"].to_numpy()).max() > 1e-6


def test_forward_model_round_trips_through_json(
    martingale: tuple[pl.DataFrame, pl.DataFrame], result: SignalResult
) -> None:
    features, _ = martingale
    text = json.dumps(result.forward_model.to_dict())
    restored = SignalModel.from_dict(json.loads(text))
    assert restored.feature_columns == tuple(FEATURES)
    assert sorted(restored.symbols) == sorted(SYMBOLS)
    assert restored.predict(features).equals(result.forward_model.predict(features))
    assert json.dumps(restored.to_dict()) == text


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
