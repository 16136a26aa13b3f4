from datetime import date

import polars as pl
import pytest

from market.calendar import sessions, trading_days
from stairways.errors import ConfigError
from validation.windows import WindowConfig, plan_windows


def _grid(n_sessions: int) -> pl.Series:
    bounds = sessions(trading_days(date(2025, 3, 3), date(2025, 12, 31))[:n_sessions])
    frames = [
        pl.datetime_range(
            row["open"], row["close"], interval="1m", closed="left", eager=True, time_zone="UTC"
        )
        for row in bounds.iter_rows(named=True)
    ]
    return pl.concat(frames).alias("ts").dt.cast_time_unit("ns")


def test_windows_are_ordered_and_separated_by_the_purge_gap() -> None:
    ts = _grid(12)
    plan = plan_windows(ts, config=WindowConfig(validation_sessions=3, min_train_sessions=2), purge_bars=50)
    frame = pl.DataFrame({"ts": ts})
    train = frame.filter(plan.train_mask())
    validation = frame.filter(plan.validation_mask())
    gap = frame.filter(~plan.train_mask() & ~plan.validation_mask())
    assert plan.train_end < plan.validation_start
    assert gap.height == 50
    assert validation.height == 3 * 390
    assert train.height == 9 * 390 - 50
    assert gap.get_column("ts").min() > plan.train_end
    assert gap.get_column("ts").max() < plan.validation_start


def test_duplicate_timestamps_of_two_symbols_count_once() -> None:
    ts = _grid(8)
    single = plan_windows(ts, config=WindowConfig(validation_sessions=2), purge_bars=20)
    double = plan_windows(pl.concat([ts, ts]), config=WindowConfig(validation_sessions=2), purge_bars=20)
    assert single == double


@pytest.mark.parametrize(
    ("n_sessions", "config", "purge", "fragment"),
    [
        (6, WindowConfig(validation_sessions=3, min_train_sessions=4), 10, "too few"),
        (8, WindowConfig(validation_sessions=3, min_train_sessions=5), 400, "purge gap"),
    ],
)
def test_too_short_history_is_a_clear_error(
    n_sessions: int, config: WindowConfig, purge: int, fragment: str
) -> None:
    with pytest.raises(ConfigError, match=fragment):
        plan_windows(_grid(n_sessions), config=config, purge_bars=purge)
