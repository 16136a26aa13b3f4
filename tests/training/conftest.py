"""Fixtures shared by the training tests: the synthetic windows and one tiny two-cycle run.

Session-scoped: the cycle and checkpoint tests read the same run, so it trains once per test session.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from envs.market_arrays import MarketArrays
from tests.training.support import SEED, synthetic_windows
from tests.training.support import TINY_CYCLES as TINY
from training.cycles import run_cycles
from training.outcome import TrainingOutcome


@pytest.fixture(scope="session")
def windows() -> tuple[MarketArrays, MarketArrays]:
    return synthetic_windows()


@pytest.fixture(scope="session")
def tiny_run(
    windows: tuple[MarketArrays, MarketArrays], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TrainingOutcome, Path]]:
    train, validation = windows
    output = tmp_path_factory.mktemp("tiny-run")
    outcome = run_cycles(train=train, selection=validation, config=TINY, seed=SEED, output_dir=output)
    yield outcome, output
