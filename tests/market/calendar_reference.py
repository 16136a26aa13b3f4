"""Hand-written NYSE rules: the independent reference that ``market.calendar`` is checked against.

This was ``market.calendar`` before the project switched to the exchange-calendars library. The rules are the
exchange's published ones (observed-holiday shifts, Juneteenth from 2022, Good Friday, early closes on July 3,
the day after Thanksgiving and Christmas Eve) plus the one-off closures since 2001. Kept unchanged as a
cross-check (``tests/market/test_calendar.py``) and as the "before" side of ``benchmarks/bench_calendar.py``.
Where they differ from the library (2001-2100): the library records 2002's early close on Friday July 5, where
these rules say Wednesday July 3, and an early close on Friday December 26, 2003, which these rules lack.
"""

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import polars as pl

__all__ = [
    "EARLY_CLOSE",
    "EXCHANGE_TZ",
    "REGULAR_CLOSE",
    "REGULAR_OPEN",
    "SESSION_MINUTES",
    "early_closes",
    "holidays",
    "is_trading_day",
    "sessions",
    "trading_days",
]

EXCHANGE_TZ = ZoneInfo("America/New_York")
REGULAR_OPEN = time(9, 30)
REGULAR_CLOSE = time(16, 0)
EARLY_CLOSE = time(13, 0)
SESSION_MINUTES = 390

# Closures the rules do not produce (national days of mourning, weather, 9/11).
_SPECIAL_CLOSURES: dict[date, str] = {
    date(2001, 9, 11): "September 11",
    date(2001, 9, 12): "September 11",
    date(2001, 9, 13): "September 11",
    date(2001, 9, 14): "September 11",
    date(2004, 6, 11): "Reagan day of mourning",
    date(2007, 1, 2): "Ford day of mourning",
    date(2012, 10, 29): "Hurricane Sandy",
    date(2012, 10, 30): "Hurricane Sandy",
    date(2018, 12, 5): "Bush day of mourning",
    date(2025, 1, 9): "Carter day of mourning",
}


def _easter(year: int) -> date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * el) // 451
    month, day = divmod(h + el - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: date) -> date:
    """Saturday holidays are observed on Friday, Sunday holidays on Monday."""
    if day.weekday() == 5:
        return day - timedelta(days=1)
    if day.weekday() == 6:
        return day + timedelta(days=1)
    return day


def holidays(year: int) -> dict[date, str]:
    """Full-day NYSE closures in ``year`` (weekdays only), mapped to their names."""
    days: dict[date, str] = {}
    new_year = date(year, 1, 1)
    # NYSE does not close on Friday Dec 31 when New Year's Day falls on a Saturday.
    if new_year.weekday() != 5:
        days[_observed(new_year)] = "New Year's Day"
    days[_nth_weekday(year, 1, 0, 3)] = "Martin Luther King Jr. Day"
    days[_nth_weekday(year, 2, 0, 3)] = "Washington's Birthday"
    days[_easter(year) - timedelta(days=2)] = "Good Friday"
    days[_last_weekday(year, 5, 0)] = "Memorial Day"
    if year >= 2022:
        days[_observed(date(year, 6, 19))] = "Juneteenth"
    days[_observed(date(year, 7, 4))] = "Independence Day"
    days[_nth_weekday(year, 9, 0, 1)] = "Labor Day"
    days[_nth_weekday(year, 11, 3, 4)] = "Thanksgiving Day"
    days[_observed(date(year, 12, 25))] = "Christmas Day"
    days.update({d: name for d, name in _SPECIAL_CLOSURES.items() if d.year == year})
    return {d: name for d, name in days.items() if d.weekday() < 5}


def early_closes(year: int) -> set[date]:
    """Sessions in ``year`` that close at 13:00 New York time."""
    closed = holidays(year)
    candidates = {_nth_weekday(year, 11, 3, 4) + timedelta(days=1)}
    july_fourth = date(year, 7, 4)
    if july_fourth.weekday() in (1, 2, 3, 4):  # Tuesday..Friday: July 3 is a weekday session
        candidates.add(date(year, 7, 3))
    christmas_eve = date(year, 12, 24)
    if christmas_eve.weekday() in (0, 1, 2, 3):
        candidates.add(christmas_eve)
    return {d for d in candidates if d not in closed and d.weekday() < 5}


def is_trading_day(day: date) -> bool:
    """True when the NYSE holds a regular session on ``day``."""
    return day.weekday() < 5 and day not in holidays(day.year)


def trading_days(start: date, end: date) -> list[date]:
    """Trading days from ``start`` to ``end``, both included."""
    if end < start:
        return []
    closed: dict[date, str] = {}
    for year in range(start.year, end.year + 1):
        closed.update(holidays(year))
    span = (end - start).days + 1
    return [
        d for d in (start + timedelta(days=i) for i in range(span)) if d.weekday() < 5 and d not in closed
    ]


def _utc(day: date, clock: time) -> datetime:
    return datetime.combine(day, clock, tzinfo=EXCHANGE_TZ).astimezone(ZoneInfo("UTC"))


def sessions(days: Iterable[date]) -> pl.DataFrame:
    """Session bounds for the given trading days.

    Columns: ``session`` (Date), ``open``/``close`` (Datetime ns UTC; ``close`` is the end of the last
    bar), ``early_close`` (bool), ``minutes`` (session length in minutes).
    """
    rows_day: list[date] = []
    rows_open: list[datetime] = []
    rows_close: list[datetime] = []
    rows_early: list[bool] = []
    early_by_year: dict[int, set[date]] = {}
    for day in days:
        early = day in early_by_year.setdefault(day.year, early_closes(day.year))
        rows_day.append(day)
        rows_open.append(_utc(day, REGULAR_OPEN))
        rows_close.append(_utc(day, EARLY_CLOSE if early else REGULAR_CLOSE))
        rows_early.append(early)
    frame = pl.DataFrame(
        {"session": rows_day, "open": rows_open, "close": rows_close, "early_close": rows_early},
        schema={
            "session": pl.Date,
            "open": pl.Datetime("ns", "UTC"),
            "close": pl.Datetime("ns", "UTC"),
            "early_close": pl.Boolean,
        },
    )
    return frame.with_columns(
        ((pl.col("close") - pl.col("open")).dt.total_minutes()).cast(pl.Int64).alias("minutes")
    )
