"""A trial's score never reads the test window: change every test-window bar and the trial scores the same."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from stairways import pipeline
from stairways.tuning import objective
from stairways.tuning.objective import prepare_tuning_data, score_config, trial_base
from stairways.tuning.space import config_for
from tests.stairways.tuning.support import TINY_BASE, TINY_TUNE

TRIAL = {"training.ppo.net_width": 32, "features.time": False, "training.ppo.gamma": 0.97}


def _changed_test_window(market: pipeline.MarketData) -> pipeline.MarketData:
    """The same bars, except every bar of the night's test window: prices moved up to 2%, volumes doubled."""
    night = pipeline.split_windows(pipeline.prepare_bars(market.bars, TINY_BASE).bars, TINY_BASE)
    bars = market.bars.with_row_index("_row")
    wiggle = 1.0 + 0.02 * np.sin(np.arange(bars.height) / 7.0)
    inside = pl.col("ts") >= night.test_start
    factor = pl.Series("_factor", wiggle)
    changed = bars.with_columns(factor).with_columns(
        *(
            pl.when(inside).then(pl.col(name) * pl.col("_factor")).otherwise(pl.col(name)).alias(name)
            for name in ("open", "high", "low", "close")
        ),
        pl.when(inside).then(pl.col("volume") * 2).otherwise(pl.col("volume")).alias("volume"),
    )
    return replace(market, bars=changed.drop("_row", "_factor"))


@pytest.fixture(scope="module")
def scores(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    monkeypatch = pytest.MonkeyPatch()
    config = config_for(trial_base(TINY_BASE, TINY_TUNE), TRIAL)
    original = pipeline.load_market(TINY_BASE)
    results = []
    try:
        for market in (original, _changed_test_window(original)):
            monkeypatch.setattr(objective, "load_market", lambda _config, _market=market: _market)
            data = prepare_tuning_data(TINY_BASE, TINY_TUNE)
            results.append(
                (market, data, score_config(config, data, work_dir=tmp_path_factory.mktemp("trial")))
            )
    finally:
        monkeypatch.undo()
    return tuple(results)


def test_the_changed_market_really_differs_in_the_test_window_only(scores: tuple) -> None:
    (original, *_), (changed, *_) = scores
    assert not original.bars.equals(changed.bars)
    night = pipeline.split_windows(pipeline.prepare_bars(original.bars, TINY_BASE).bars, TINY_BASE)
    before = pl.col("ts") < night.test_start
    assert original.bars.filter(before).equals(changed.bars.filter(before))


def test_the_tuning_history_labels_and_folds_ignore_the_test_window(scores: tuple) -> None:
    (_, first, _), (_, second, _) = scores
    assert first.history.bars.equals(second.history.bars)
    assert first.labels.equals(second.labels)
    assert first.folds == second.folds


def test_the_trial_scores_the_same_to_the_last_bit(scores: tuple) -> None:
    (_, _, first), (_, _, second) = scores
    assert first == second
    assert first.score == second.score


def test_a_score_is_the_mean_of_the_folds_judged_returns(scores: tuple) -> None:
    (_, data, score), _ = scores
    assert len(score.folds) == TINY_TUNE.folds
    assert len(score.session_returns) == TINY_TUNE.folds * TINY_TUNE.fold_sessions
    for fold in score.folds:
        assert fold.score == pytest.approx(100.0 * np.mean(fold.session_returns))
    assert score.score == pytest.approx(np.mean([fold.score for fold in score.folds]))


def test_pruning_hears_every_training_cycle_with_its_fold_offset(tmp_path: Path) -> None:
    config = config_for(trial_base(TINY_BASE, TINY_TUNE), TRIAL)
    data = prepare_tuning_data(TINY_BASE, TINY_TUNE)
    heard: list[int] = []
    score_config(config, data, work_dir=tmp_path, report=lambda step, value: heard.append(step))
    assert heard[0] == 1 and heard == sorted(heard) and len(heard) == len(set(heard))
    assert max(heard) <= TINY_TUNE.folds * TINY_TUNE.cycles
