"""Tests for market/signal/inputs.py: feature and label frames the signal cannot read are refused."""

import polars as pl
import pytest

from core.errors import ConfigError
from tests.market.signal.support import FEATURES
from tests.market.signal.support import run_signal as _signal


def test_empty_features_are_refused(martingale: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    features, labels = martingale
    with pytest.raises(ValueError, match="features is empty"):
        _signal(features.clear(), labels, window_starts={})


def test_missing_feature_columns_are_a_config_error(martingale: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    features, labels = martingale
    with pytest.raises(ConfigError, match=r"\['momentum_99'\] are not in features"):
        _signal(features, labels, feature_columns=[*FEATURES, "momentum_99"])


def test_primary_horizon_missing_from_labels_is_a_config_error(
    martingale: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    features, labels = martingale
    message = r"no rows at primary_horizon 30 \(horizons present: \[10, 20, 50\]\)"
    with pytest.raises(ConfigError, match=message):
        _signal(features, labels, primary_horizon=30)
