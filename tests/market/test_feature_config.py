"""Tests for market.feature_config: default names and warm-up, window knobs, config validation."""

import pytest
from pydantic import ValidationError

from market.feature_config import FEATURE_SETS, FeatureConfig, feature_names, warmup_bars


def test_default_names_are_stable() -> None:
    assert feature_names() == [
        "log_return_1",
        "log_return_5",
        "log_return_20",
        "momentum_10",
        "close_zscore_5",
        "close_zscore_20",
        "volatility_20",
        "atr_14",
        "bollinger_width_20",
        "bollinger_position_20",
        "adx_14",
        "regression_slope_20",
        "trend_persistence_20",
        "rsi_14",
        "stochastic_k_14",
        "stochastic_d_3",
        "return_correlation_30",
        "spread_zscore_60",
        "return_divergence_5",
        "session_minute_sin",
        "session_minute_cos",
    ]
    assert warmup_bars() == 59  # spread z-score over 60 bars


def test_window_knobs_rename_features_and_move_warmup() -> None:
    config = FeatureConfig(return_windows=(1, 3), rsi_window=7, spread_window=10, adx_window=40)
    assert "log_return_3" in feature_names(config) and "log_return_20" not in feature_names(config)
    assert "rsi_7" in feature_names(config)
    assert warmup_bars(config) == 2 * 40 - 2


def test_config_is_frozen_and_strict() -> None:
    config = FeatureConfig()
    with pytest.raises(ValidationError):
        config.price = False  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        FeatureConfig(colour="blue")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "overrides",
    [
        {"rsi_window": 0},
        {"atr_window": -3},
        {"volatility_window": 1},
        {"return_windows": ()},
        {"return_windows": (5, 5)},
        {"zscore_windows": (1,)},
        {"bollinger_std": 0.0},
    ],
)
def test_config_rejects_bad_windows(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FeatureConfig(**overrides)  # type: ignore[arg-type]


def test_all_sets_disabled_is_an_error() -> None:
    with pytest.raises(ValueError, match="all feature sets are disabled"):
        FeatureConfig.model_validate(dict.fromkeys(FEATURE_SETS, False))
