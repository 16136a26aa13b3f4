from datetime import date

import polars as pl
import pytest
from pydantic import ValidationError

from core.errors import ConfigError
from market.calendar import sessions, trading_days
from validation.windows import WINDOW_NAMES, WindowConfig, plan_windows


def _grid(n_sessions: int) -> pl.Series:
    bounds = sessions(trading_days(date(2025, 3, 3), date(2025, 12, 31))[:n_sessions])
    frames = [
        pl.datetime_range(
            row["open"], row["close"], interval="1m", closed="left", eager=True, time_zone="UTC"
        )
        for row in bounds.iter_rows(named=True)
    ]
    return pl.concat(frames).alias("ts").dt.cast_time_unit("ns")


def test_three_windows_in_time_order_separated_by_purge_gaps() -> None:
    ts = _grid(14)
    config = WindowConfig(selection_sessions=3, test_sessions=2, min_train_sessions=2)
    plan = plan_windows(ts, config=config, purge_bars=50)
    frame = pl.DataFrame({"ts": ts})
    train = frame.filter(plan.train_mask())
    selection = frame.filter(plan.selection_mask())
    test = frame.filter(plan.test_mask())
    gaps = frame.filter(~plan.train_mask() & ~plan.selection_mask() & ~plan.test_mask())
    assert plan.train_end < plan.selection_start <= plan.selection_end < plan.test_start
    assert test.height == 2 * 390
    assert selection.height == 3 * 390 - 50
    assert train.height == 9 * 390 - 50
    assert gaps.height == 100
    first_gap = gaps.filter(pl.col("ts") < plan.selection_start)
    second_gap = gaps.filter(pl.col("ts") > plan.selection_end)
    assert first_gap.height == second_gap.height == 50
    assert first_gap["ts"].min() > plan.train_end
    assert second_gap["ts"].max() < plan.test_start
    # every bar belongs to at most one window
    overlap = frame.filter(
        plan.train_mask() & plan.selection_mask() | plan.selection_mask() & plan.test_mask()
    )
    assert overlap.height == 0


def test_bounds_are_reported_for_every_window() -> None:
    plan = plan_windows(_grid(12), config=WindowConfig(selection_sessions=2, test_sessions=2), purge_bars=20)
    bounds = plan.as_dict()
    assert set(bounds) == {f"{w}_{edge}" for w in WINDOW_NAMES for edge in ("start", "end")} | {"purge_bars"}
    assert bounds["train_end"] < bounds["selection_start"] < bounds["selection_end"] < bounds["test_start"]
    with pytest.raises(ValueError, match="unknown window"):
        plan.bounds("validation")


def test_duplicate_timestamps_of_two_symbols_count_once() -> None:
    ts = _grid(10)
    config = WindowConfig(selection_sessions=2, test_sessions=2)
    single = plan_windows(ts, config=config, purge_bars=20)
    double = plan_windows(pl.concat([ts, ts]), config=config, purge_bars=20)
    assert single == double


def test_the_old_validation_window_setting_names_its_replacements() -> None:
    with pytest.raises(ValidationError, match="selection_sessions.*test_sessions"):
        WindowConfig.model_validate({"validation_sessions": 3})


@pytest.mark.parametrize(
    ("n_sessions", "config", "purge", "fragment"),
    [
        (8, WindowConfig(selection_sessions=2, test_sessions=3, min_train_sessions=4), 10, "too few"),
        (
            10,
            WindowConfig(selection_sessions=2, test_sessions=3, min_train_sessions=5),
            400,
            "training window",
        ),
        (
            10,
            WindowConfig(selection_sessions=1, test_sessions=3, min_train_sessions=2),
            400,
            "selection window",
        ),
    ],
)
def test_too_short_history_is_a_clear_error(
    n_sessions: int, config: WindowConfig, purge: int, fragment: str
) -> None:
    with pytest.raises(ConfigError, match=fragment):
        plan_windows(_grid(n_sessions), config=config, purge_bars=purge)
