"""Fixtures of the market/signal/ tests: one torch thread, and the martingale market and signal built once."""

from collections.abc import Iterator

import polars as pl
import pytest
import torch

from market.features import build_features
from market.labeling import label_bars
from market.signal import SignalResult
from tests.market.signal.support import run_signal, synthetic_bars


@pytest.fixture(scope="package", autouse=True)
def single_torch_thread() -> Iterator[None]:
    """One torch thread, as the pipeline runs it (a second thread only contends on 2 shared cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="package")
def martingale_bars() -> pl.DataFrame:
    return synthetic_bars("martingale", sessions=24)


@pytest.fixture(scope="package")
def martingale(martingale_bars: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    return build_features(martingale_bars), label_bars(martingale_bars)


@pytest.fixture(scope="package")
def result(martingale: tuple[pl.DataFrame, pl.DataFrame]) -> SignalResult:
    features, labels = martingale
    return run_signal(features, labels)
