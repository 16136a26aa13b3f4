"""Tests for market/signal/config.py: settings that make no sense are refused."""

import pytest
from pydantic import ValidationError

from market.signal import SignalConfig


@pytest.mark.parametrize(
    "settings_",
    [
        {"refit_every_sessions": 0},
        {"min_train_samples": 0},
        {"n_splits": 5},  # gone: a forward walk has no folds
        {"embargo_fraction": 0.01},  # gone: no training sample lies after a block
    ],
)
def test_bad_config_is_refused(settings_: dict[str, int | float]) -> None:
    with pytest.raises(ValidationError):
        SignalConfig(**settings_)
