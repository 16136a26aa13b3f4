"""Exchange calendar: holidays, early closes and session bounds in UTC, from the exchange-calendars library.

Sessions, holidays and early closes come from ``exchange_calendars.get_calendar(exchange)`` (default
``XNYS``, the NYSE), so closures the exchange announces arrive with library updates, and another exchange is a
name away (``exchange="XLON"``). The constants below (``EXCHANGE_TZ``, session times, ``SESSION_MINUTES``)
describe the NYSE, the exchange the rest of the pipeline assumes.

Each calendar is built once per process (about 0.5 s, plus about 1 s to import the library on first use)
over the fixed span :data:`CALENDAR_START` .. :data:`CALENDAR_END`, or the part of it the library records for
that exchange; a date outside that span raises :class:`~core.errors.ConfigError` naming the span. Lookups are
array searches and joins over the prebuilt schedule.
"""

import warnings
from dataclasses import dataclass
from datetime import date, time
from functools import cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from core.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from exchange_calendars import ExchangeCalendar

__all__ = [
    "CALENDAR_END",
    "CALENDAR_START",
    "DEFAULT_EXCHANGE",
    "EARLY_CLOSE",
    "EXCHANGE_TZ",
    "REGULAR_CLOSE",
    "REGULAR_OPEN",
    "SESSION_MINUTES",
    "calendar_span",
    "early_closes",
    "holidays",
    "is_trading_day",
    "sessions",
    "trading_days",
]

DEFAULT_EXCHANGE = "XNYS"
"""ISO 10383 MIC of the exchange-calendars calendar used when no exchange is named: the NYSE."""
EXCHANGE_TZ = ZoneInfo("America/New_York")
REGULAR_OPEN = time(9, 30)
REGULAR_CLOSE = time(16, 0)
EARLY_CLOSE = time(13, 0)
SESSION_MINUTES = 390
CALENDAR_START = date(2000, 1, 1)
"""First day the calendars are built from (the library's own default moves with the clock: 20 years back)."""
CALENDAR_END = date(2100, 12, 31)
"""Last day the calendars are built to (the library's default is one year ahead, too short for schedules)."""

_SPECIAL_CLOSURE = "Special closure"
_SCHEDULE_SCHEMA = {
    "session": pl.Date,
    "open": pl.Datetime("ns", "UTC"),
    "close": pl.Datetime("ns", "UTC"),
    "early_close": pl.Boolean,
    "minutes": pl.Int64,
}


@dataclass(frozen=True)
class _Calendar:
    """One exchange's calendar over its span, in the shapes the lookups need."""

    exchange: str
    start: date
    end: date
    session_days: np.ndarray  # datetime64[D], sorted
    session_set: frozenset[date]
    schedule: pl.DataFrame  # one row per session, columns as _SCHEDULE_SCHEMA
    closures_by_year: dict[int, dict[date, str]]
    early_by_year: dict[int, frozenset[date]]

    def check(self, first: date, last: date) -> None:
        """Raise ``ConfigError`` unless ``first`` .. ``last`` lies within the calendar's span."""
        if first < self.start or last > self.end:
            span = f"{first}" if first == last else f"{first} .. {last}"
            msg = (
                f"{span} is outside the {self.exchange} calendar's span {self.start} .. {self.end} "
                "(market.calendar builds exchange-calendars over that span)"
            )
            raise ConfigError(msg)


def _build(exchange: str, start: date, end: date) -> tuple["ExchangeCalendar", date, date]:
    """The library's calendar of ``exchange`` from ``start`` to ``end`` or within its bounds, and that span."""
    import exchange_calendars as xc  # about 1 s: only for callers that look sessions up
    import pandas.errors

    # exchange-calendars 4.13 reads Series.values of tz-aware columns, deprecated in pandas 3.1 (a
    # Pandas4Warning; pandas 2 has no such class and no such warning).
    deprecation = getattr(pandas.errors, "Pandas4Warning", DeprecationWarning)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Series.values returning", category=deprecation)
        try:
            return xc.get_calendar(exchange, start=start.isoformat(), end=end.isoformat()), start, end
        except xc.errors.InvalidCalendarName as error:
            msg = f"exchange-calendars has no calendar named {exchange!r} (e.g. {DEFAULT_EXCHANGE!r})"
            raise ConfigError(msg) from error
        except ValueError:
            # Some calendars record holidays for fewer years (XKRX to 2050, XBOM to 2026): take what they have.
            kind = type(xc.get_calendar(exchange))
            low, high = kind.bound_min(), kind.bound_max()
            first = max(start, low.date()) if low is not None else start
            last = min(end, high.date()) if high is not None else end
            return xc.get_calendar(exchange, start=first.isoformat(), end=last.isoformat()), first, last


@cache
def _calendar(exchange: str) -> _Calendar:
    native, start, end = _build(exchange, CALENDAR_START, CALENDAR_END)
    schedule = native.schedule
    session_days = schedule.index.to_numpy().astype("datetime64[D]")
    early = np.isin(session_days, native.early_closes.to_numpy().astype("datetime64[D]"))
    frame = pl.DataFrame(
        {
            "session": session_days,
            "open": schedule["open"].dt.tz_convert(None).to_numpy(),
            "close": schedule["close"].dt.tz_convert(None).to_numpy(),
            "early_close": early,
        }
    ).with_columns(
        pl.col("session").cast(pl.Date),
        pl.col("open", "close").cast(pl.Datetime("ns")).dt.replace_time_zone("UTC"),
    )
    frame = frame.with_columns(
        (pl.col("close") - pl.col("open")).dt.total_minutes().cast(pl.Int64).alias("minutes")
    ).select(list(_SCHEDULE_SCHEMA))

    # Closures: the exchange's working weekdays that are not sessions, named where the library's rules say.
    days = np.arange(np.datetime64(start, "D"), np.datetime64(end, "D") + 1)
    closed = days[np.is_busday(days, weekmask=native.weekmask) & ~np.isin(days, session_days)]
    names: dict[date, str] = {}
    if native.regular_holidays is not None:
        named = native.regular_holidays.holidays(start, end, return_name=True)
        names = {stamp.date(): str(name) for stamp, name in named.items()}
    closures_by_year: dict[int, dict[date, str]] = {}
    for day in closed.tolist():
        closures_by_year.setdefault(day.year, {})[day] = names.get(day, _SPECIAL_CLOSURE)
    early_by_year: dict[int, set[date]] = {}
    for day in session_days[early].tolist():
        early_by_year.setdefault(day.year, set()).add(day)
    return _Calendar(
        exchange=exchange,
        start=start,
        end=end,
        session_days=session_days,
        session_set=frozenset(session_days.tolist()),
        schedule=frame,
        closures_by_year=closures_by_year,
        early_by_year={year: frozenset(found) for year, found in early_by_year.items()},
    )


def calendar_span(exchange: str = DEFAULT_EXCHANGE) -> tuple[date, date]:
    """First and last day the functions of this module answer for ``exchange`` (both included)."""
    calendar = _calendar(exchange)
    return calendar.start, calendar.end


def holidays(year: int, *, exchange: str = DEFAULT_EXCHANGE) -> dict[date, str]:
    """Full-day closures of ``exchange`` in ``year`` on its working weekdays, mapped to their names.

    Names are the library's for rule-based holidays and ``"Special closure"`` for one-off closures (days of
    mourning, weather, September 11).
    """
    calendar = _calendar(exchange)
    calendar.check(date(year, 1, 1), date(year, 12, 31))
    return dict(calendar.closures_by_year.get(year, {}))


def early_closes(year: int, *, exchange: str = DEFAULT_EXCHANGE) -> set[date]:
    """Sessions of ``exchange`` in ``year`` that close before the regular close (13:00 New York on the NYSE)."""
    calendar = _calendar(exchange)
    calendar.check(date(year, 1, 1), date(year, 12, 31))
    return set(calendar.early_by_year.get(year, ()))


def is_trading_day(day: date, *, exchange: str = DEFAULT_EXCHANGE) -> bool:
    """True when ``exchange`` (default the NYSE) holds a session on ``day``."""
    calendar = _calendar(exchange)
    calendar.check(day, day)
    return day in calendar.session_set


def trading_days(start: date, end: date, *, exchange: str = DEFAULT_EXCHANGE) -> list[date]:
    """Trading days of ``exchange`` from ``start`` to ``end``, both included."""
    if end < start:
        return []
    calendar = _calendar(exchange)
    calendar.check(start, end)
    first = np.searchsorted(calendar.session_days, np.datetime64(start, "D"), side="left")
    last = np.searchsorted(calendar.session_days, np.datetime64(end, "D"), side="right")
    return calendar.session_days[first:last].tolist()


def sessions(days: "Iterable[date]", *, exchange: str = DEFAULT_EXCHANGE) -> pl.DataFrame:
    """Session bounds for the given trading days, one row per day in the order given.

    Columns: ``session`` (Date), ``open``/``close`` (Datetime ns UTC; ``close`` is the end of the last
    bar), ``early_close`` (bool), ``minutes`` (session length in minutes). A day that is not a session of
    ``exchange`` raises ``ConfigError``.
    """
    requested = pl.Series("session", list(days), dtype=pl.Date).to_numpy()  # datetime64[D]
    if requested.size == 0:
        return pl.DataFrame(schema=_SCHEDULE_SCHEMA)
    calendar = _calendar(exchange)
    calendar.check(requested.min().item(), requested.max().item())
    rows = np.searchsorted(calendar.session_days, requested).clip(max=calendar.session_days.size - 1)
    missing = requested[calendar.session_days[rows] != requested]
    if missing.size:
        shown = ", ".join(str(day) for day in missing[:5])
        msg = f"{missing.size} day(s) are not {exchange} sessions: {shown}"
        raise ConfigError(msg)
    return calendar.schedule[rows]
