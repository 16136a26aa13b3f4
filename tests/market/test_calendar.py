from datetime import date

import polars as pl
import pytest

from market.calendar import early_closes, holidays, is_trading_day, sessions, trading_days

# Published NYSE full-day closures (nyse.com holiday tables) for spot years.
NYSE_2024_HOLIDAYS = {
    date(2024, 1, 1),
    date(2024, 1, 15),
    date(2024, 2, 19),
    date(2024, 3, 29),
    date(2024, 5, 27),
    date(2024, 6, 19),
    date(2024, 7, 4),
    date(2024, 9, 2),
    date(2024, 11, 28),
    date(2024, 12, 25),
}
NYSE_2026_HOLIDAYS = {
    date(2026, 1, 1),
    date(2026, 1, 19),
    date(2026, 2, 16),
    date(2026, 4, 3),
    date(2026, 5, 25),
    date(2026, 6, 19),
    date(2026, 7, 3),
    date(2026, 9, 7),
    date(2026, 11, 26),
    date(2026, 12, 25),
}


@pytest.mark.parametrize(("year", "expected"), [(2024, NYSE_2024_HOLIDAYS), (2026, NYSE_2026_HOLIDAYS)])
def test_holidays_match_published_tables(year: int, expected: set[date]) -> None:
    assert set(holidays(year)) == expected


@pytest.mark.parametrize(
    ("year", "expected"),
    [
        (2023, {date(2023, 7, 3), date(2023, 11, 24)}),  # Dec 24 is a Sunday
        (2024, {date(2024, 7, 3), date(2024, 11, 29), date(2024, 12, 24)}),
        (2025, {date(2025, 7, 3), date(2025, 11, 28), date(2025, 12, 24)}),
        (2020, {date(2020, 11, 27), date(2020, 12, 24)}),  # July 3 is the observed holiday
    ],
)
def test_early_closes(year: int, expected: set[date]) -> None:
    assert early_closes(year) == expected


def test_observed_rules_and_special_closures() -> None:
    assert date(2021, 12, 31) not in holidays(2021)  # New Year's on Saturday: no Friday closure
    assert date(2022, 12, 26) in holidays(2022)  # Christmas on Sunday -> Monday
    assert date(2021, 6, 18) not in holidays(2021)  # Juneteenth only from 2022
    assert date(2022, 6, 20) in holidays(2022)  # Juneteenth on Sunday -> Monday
    assert date(2025, 1, 9) in holidays(2025)  # national day of mourning
    assert not is_trading_day(date(2025, 1, 4))  # Saturday
    assert is_trading_day(date(2025, 1, 10))


def test_trading_days_counts_a_year() -> None:
    assert len(trading_days(date(2024, 1, 1), date(2024, 12, 31))) == 252
    assert trading_days(date(2024, 1, 2), date(2024, 1, 1)) == []


def test_sessions_bounds_in_utc_across_dst() -> None:
    frame = sessions([date(2024, 3, 8), date(2024, 3, 11), date(2024, 11, 29)])
    assert frame.schema["open"] == pl.Datetime("ns", "UTC")
    opens = [ts.strftime("%H:%M") for ts in frame.get_column("open")]
    closes = [ts.strftime("%H:%M") for ts in frame.get_column("close")]
    assert opens == ["14:30", "13:30", "14:30"]  # EST, then EDT after the March switch
    assert closes == ["21:00", "20:00", "18:00"]  # day after Thanksgiving closes 13:00 EST
    assert frame.get_column("minutes").to_list() == [390, 390, 210]
    assert frame.get_column("early_close").to_list() == [False, False, True]
