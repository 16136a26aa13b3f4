import warnings
from datetime import date, timedelta

import polars as pl
import pytest

from core.errors import ConfigError
from market.calendar import (
    CALENDAR_END,
    CALENDAR_START,
    calendar_span,
    early_closes,
    holidays,
    is_trading_day,
    sessions,
    trading_days,
)
from tests.market import calendar_reference as reference

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


# -- the library against the hand-written reference ----------------------------------------------------------

# Where the library (exchange-calendars 4.13) and the hand-written rules differ, by year: (library, reference).
# The library follows the exchange's record; the rules generalize today's July 3 rule backwards and know no
# one-off early closes.
KNOWN_EARLY_CLOSE_DIFFERENCES: dict[int, tuple[set[date], set[date]]] = {
    2002: ({date(2002, 7, 5)}, {date(2002, 7, 3)}),  # July 4 on a Thursday: the early close was Friday
    2003: ({date(2003, 12, 26)}, set()),  # the Friday after Christmas closed at 13:00
}
REFERENCE_YEARS = range(2001, CALENDAR_END.year + 1)


def test_calendar_is_built_over_a_fixed_span() -> None:
    assert calendar_span() == (CALENDAR_START, CALENDAR_END) == (date(2000, 1, 1), date(2100, 12, 31))


@pytest.mark.parametrize("year", REFERENCE_YEARS)
def test_library_and_reference_agree_on_every_holiday_and_early_close(year: int) -> None:
    assert set(holidays(year)) == set(reference.holidays(year))
    library, rules = KNOWN_EARLY_CLOSE_DIFFERENCES.get(year, (set(), set()))
    assert early_closes(year) - library == reference.early_closes(year) - rules
    assert early_closes(year) >= library and reference.early_closes(year) >= rules


def test_library_and_reference_agree_on_sessions_and_trading_days() -> None:
    start, end = date(2001, 1, 1), date(2030, 12, 31)
    days = trading_days(start, end)
    assert days == reference.trading_days(start, end)
    differing = {day for library, rules in KNOWN_EARLY_CLOSE_DIFFERENCES.values() for day in library | rules}
    same = [day for day in days if day not in differing]
    assert sessions(same).equals(reference.sessions(same))
    sample = [start + timedelta(days=offset) for offset in range(0, (end - start).days, 7)]
    assert [is_trading_day(day) for day in sample] == [reference.is_trading_day(day) for day in sample]


def test_one_off_closures_are_named_as_special() -> None:
    named = holidays(2025)
    assert named[date(2025, 1, 9)] == "Special closure"  # Carter day of mourning
    assert named[date(2025, 12, 25)] == "Christmas"


def test_dates_outside_the_span_name_it() -> None:
    for call in (
        lambda: is_trading_day(date(1999, 12, 31)),
        lambda: trading_days(date(2100, 12, 1), date(2101, 1, 31)),
        lambda: holidays(2101),
        lambda: sessions([date(1999, 12, 31)]),
    ):
        with pytest.raises(ConfigError, match=r"span 2000-01-01 \.\. 2100-12-31"):
            call()


def test_sessions_refuse_a_day_without_a_session_and_keep_the_given_order() -> None:
    with pytest.raises(ConfigError, match="2024-12-25"):
        sessions([date(2024, 12, 24), date(2024, 12, 25)])
    frame = sessions(iter([date(2024, 12, 26), date(2024, 12, 24), date(2024, 12, 26)]))
    assert frame.get_column("session").to_list() == [
        date(2024, 12, 26),
        date(2024, 12, 24),
        date(2024, 12, 26),
    ]
    assert sessions([]).schema == frame.schema


def test_another_exchange_by_name_builds_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the library's pandas deprecation is silenced where it is built
        london = holidays(2024, exchange="XLON")
    assert date(2024, 12, 26) in london  # Boxing Day
    assert is_trading_day(date(2024, 7, 4), exchange="XLON")
    assert not is_trading_day(date(2024, 7, 4))
    with pytest.raises(ConfigError, match="no calendar named 'NOPE'"):
        is_trading_day(date(2024, 7, 4), exchange="NOPE")


def test_calendars_with_fewer_recorded_years_keep_their_own_span() -> None:
    # exchange-calendars 4.13 records Singapore's holidays to 2026 only; a library update moves the end.
    first, last = calendar_span("XSES")
    assert first == CALENDAR_START and date(2026, 12, 31) <= last < CALENDAR_END
    with pytest.raises(ConfigError, match="XSES calendar's span"):
        holidays(last.year + 1, exchange="XSES")
