"""Tests for training/outcome.py: the rules that read the cycle results (early stop, best cycle, go on)."""

from pathlib import Path

import polars as pl
import pytest

import training.outcome as outcome_module
from training.outcome import CycleResult, should_stop
from training.ppo import TrainingConfig

# -------------------------------------------------------------------------------------------- early stop


@pytest.mark.parametrize(
    ("history", "stop"),
    [
        ([], False),
        ([1.0], False),
        ([1.0, 1.06], False),
        ([1.0, 1.04], True),
        ([1.0, 0.5], True),
        ([1.0, 2.0, 2.05], True),  # against the best earlier score, not the first
        ([2.0, 1.0, 2.2], False),
        ([-2.0, -1.0], False),  # improving a negative score: +50%
        ([-1.0, -0.99], True),  # +1%
        ([-1.0, -1.5], True),
        ([0.0, 0.005], False),  # best at zero: the 0.01 floor makes this +50%
        ([0.0, 0.0004], True),  # +4%
        ([0.0, 0.0], True),
        ([1.0, float("nan")], True),
        ([float("nan"), 1.0], False),
        ([float("nan"), 1.0, 1.01], True),
    ],
)
def test_should_stop(history: list[float], stop: bool) -> None:
    assert should_stop(history, min_improvement=0.05) is stop


def test_should_stop_respects_the_threshold_and_floor() -> None:
    assert should_stop([1.0, 1.19], min_improvement=0.2)
    assert not should_stop([1.0, 1.21], min_improvement=0.2)
    assert not should_stop([1.0, 1.0], min_improvement=0.0)
    assert should_stop([0.0, 0.005], min_improvement=0.05, score_floor=1.0)


# ------------------------------------------------------------------------------------ best cycle, go on


def _fake_result(cycle: int, score: float, trades: float, *, rolled_back: bool = False) -> CycleResult:
    return CycleResult(
        cycle=cycle,
        checkpoint=Path(f"cycle-{cycle}"),
        metrics={},
        evaluation={"score": score, "trades_per_day": trades},
        divergence=0.01,
        rolled_back=rolled_back,
        warm_start_reason="",
        trajectory=pl.DataFrame(),
    )


def test_the_best_cycle_is_picked_among_those_trading_inside_the_band() -> None:
    results = [_fake_result(1, 0.30, 40.0), _fake_result(2, 0.10, 18.0), _fake_result(3, 0.20, 3.0)]
    assert outcome_module.best_cycle(results).cycle == 1  # type: ignore[union-attr]
    assert outcome_module.best_cycle(results, trades_band=(5.0, 25.0)).cycle == 2  # type: ignore[union-attr]
    outside = [_fake_result(1, 0.30, 40.0), _fake_result(2, 0.40, 30.0, rolled_back=True)]
    assert outcome_module.best_cycle(outside, trades_band=(5.0, 25.0)).cycle == 1  # type: ignore[union-attr]


def test_training_goes_on_past_an_early_stop_while_no_cycle_trades_inside_the_band() -> None:
    config = TrainingConfig(cycles=4, selection_trades_band=(5.0, 25.0))
    worse = [_fake_result(1, 0.30, 40.0), _fake_result(2, 0.10, 38.0)]
    go_on, reason = outcome_module.continue_training(worse, config)
    assert go_on and "no cycle trades inside [5.0, 25.0]" in reason
    settled = [_fake_result(1, 0.30, 20.0), _fake_result(2, 0.10, 38.0)]
    assert outcome_module.continue_training(settled, config)[0] is False
    assert outcome_module.continue_training(worse, config.model_copy(update={"selection_trades_band": None}))[0] is False
    spent = [*worse, _fake_result(3, 0.1, 40.0), _fake_result(4, 0.1, 40.0)]
    assert outcome_module.continue_training(spent, config) == (False, "ran all 4 cycles")
    rolled = [_fake_result(1, 0.30, 40.0), _fake_result(2, 0.10, 38.0, rolled_back=True)]
    assert "rolled back" in outcome_module.continue_training(rolled, config)[1]
