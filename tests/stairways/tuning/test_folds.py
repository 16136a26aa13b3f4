"""Walk-forward folds for tuning: cut from the history before the test window, tiling its end."""

import polars as pl
import pytest

from core.errors import ConfigError
from market.calendar import EXCHANGE_TZ
from stairways.pipeline import load_market, prepare_bars, split_windows
from stairways.tuning.folds import plan_folds, tuning_history
from tests.stairways.tuning.support import TINY_BASE


def _sessions(frame: pl.DataFrame) -> list:
    return (
        frame.select(pl.col("ts").dt.convert_time_zone(str(EXCHANGE_TZ)).dt.date().unique().sort())
        .to_series()
        .to_list()
    )


@pytest.fixture(scope="module")
def prepared():
    return prepare_bars(load_market(TINY_BASE).bars, TINY_BASE)


def test_the_history_stops_at_the_end_of_the_nights_selection_window(prepared) -> None:
    history, night = tuning_history(prepared, TINY_BASE)
    assert night == split_windows(prepared.bars, TINY_BASE)
    assert history.bars.get_column("ts").max() == night.selection_end
    assert history.bars.get_column("ts").max() < night.test_start
    # The purge gap before the test window is gone too: not one bar of it, nor of the test window.
    between = prepared.bars.filter((pl.col("ts") > night.selection_end) & (pl.col("ts") < night.test_start))
    assert between.height > 0
    assert history.bars.join(between.select("ts", "symbol"), on=["ts", "symbol"]).height == 0


def test_folds_judge_consecutive_blocks_ending_where_the_history_ends(prepared) -> None:
    history, night = tuning_history(prepared, TINY_BASE)
    plan = plan_folds(history, night, TINY_BASE, folds=2, fold_sessions=2, selection_sessions=2)
    assert plan.cutoff == night.test_start and plan.history_end == night.selection_end
    assert [fold.index for fold in plan.folds] == [0, 1]
    assert plan.folds[-1].end == night.selection_end
    judged = []
    for fold in plan.folds:
        windows = fold.plan
        assert windows.train_end < windows.selection_start <= windows.selection_end < windows.test_start
        assert windows.test_end == fold.end < night.test_start
        rows = history.bars.filter((pl.col("ts") >= windows.test_start) & (pl.col("ts") <= windows.test_end))
        judged.append(_sessions(rows))
    assert all(len(block) == 2 for block in judged)
    all_sessions = _sessions(history.bars)
    assert judged[0] + judged[1] == all_sessions[-4:]  # consecutive, tiling the history's last sessions
    assert "folds" in plan.as_dict() and plan.as_dict()["test_window_starts"] == night.test_start.isoformat()


def test_too_short_a_history_is_refused_naming_what_the_folds_need(prepared) -> None:
    history, night = tuning_history(prepared, TINY_BASE)
    with pytest.raises(ConfigError, match=r"10 folds of 2 judged sessions need"):
        plan_folds(history, night, TINY_BASE, folds=10, fold_sessions=2, selection_sessions=2)
