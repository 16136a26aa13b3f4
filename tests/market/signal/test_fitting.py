"""Tests for market/signal/fitting.py: seeded, deterministic fits that change no global torch setting."""

import polars as pl
import torch

from market.signal import SignalConfig
from tests.market.signal.support import run_signal as _signal


def test_mlp_is_deterministic_per_seed_and_the_seed_matters(
    martingale: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    features, labels = martingale
    config = SignalConfig(model="mlp", hidden_units=8, epochs=30, refit_every_sessions=10)

    def run(seed: int) -> pl.DataFrame:
        return _signal(features, labels, config=config, window_starts={}, seed=seed).signal

    first = run(1)
    assert first.equals(run(1))
    assert not first["signal"].equals(run(2)["signal"])


def test_no_global_torch_setting_is_changed(martingale: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    features, labels = martingale
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    random_state = torch.random.get_rng_state()
    for model in ("logistic", "mlp"):
        config = SignalConfig(model=model, refit_every_sessions=12, epochs=5)
        _signal(features, labels, config=config, window_starts={})
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    assert torch.equal(torch.random.get_rng_state(), random_state)  # models draw from their own generator
