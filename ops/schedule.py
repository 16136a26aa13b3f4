"""The nightly trading-day schedule of the ``nightly-retrain`` deployment and its block in ``prefect.yaml``.

Cron cannot skip exchange holidays, so the ``nightly-retrain`` deployment uses an RFC 5545 rule
(:func:`nightly_rrule`): every weekday at 17:30 New York time, minus an ``EXDATE`` for every NYSE full-day
holiday of a span of years (``market.calendar.holidays``). The block in ``prefect.yaml`` between the
``BEGIN generated``/``END generated`` markers is written by ``python -m ops.serve schedule --write``
(:func:`write_schedule`) and checked by ``schedule`` (:func:`check_schedule`, and the tests): it must equal
the generator's output and reach at least :data:`MIN_SCHEDULE_HORIZON_YEARS` ahead. Closures announced at
short notice (days of mourning, weather) cannot be generated in advance; a run on such a day retrains on the
previous session's data.
"""

import re
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import yaml

from core.errors import ConfigError
from market.calendar import EXCHANGE_TZ, holidays, trading_days

__all__ = [
    "DEFAULT_SCHEDULE_YEARS",
    "MIN_SCHEDULE_HORIZON_YEARS",
    "NIGHTLY_DEPLOYMENT",
    "NIGHTLY_RUN_TIME",
    "next_night",
    "SCHEDULE_BEGIN_MARKER",
    "SCHEDULE_END_MARKER",
    "SCHEDULE_TIMEZONE",
    "check_schedule",
    "committed_schedule",
    "nightly_rrule",
    "rrule_years",
    "schedule_block",
    "write_schedule",
]

NIGHTLY_DEPLOYMENT = "nightly-retrain"
NIGHTLY_RUN_TIME = clock_time(17, 30)
SCHEDULE_TIMEZONE = str(EXCHANGE_TZ.key)
MIN_SCHEDULE_HORIZON_YEARS = 1
# The command named here is the one that regenerates the block; the marker text must not change, or the
# committed prefect.yaml no longer has a block to check.
SCHEDULE_BEGIN_MARKER = (
    "# BEGIN generated: nightly trading-day schedule (python -m ops.serve schedule --write)"
)
SCHEDULE_END_MARKER = "# END generated: nightly trading-day schedule"
DEFAULT_SCHEDULE_YEARS = 10
"""Years of holidays ``schedule --write`` lists when not told otherwise."""


def nightly_rrule(first_year: int, last_year: int, *, run_time: clock_time = NIGHTLY_RUN_TIME) -> str:
    """RFC 5545 rule of the nightly run: weekdays at ``run_time`` (New York), minus NYSE holidays.

    One ``EXDATE`` line per year from ``first_year`` to ``last_year`` (both included) lists the full-day
    closures of ``market.calendar.holidays``; the rule starts on January 1 of ``first_year`` and has no end,
    so after ``last_year`` it still runs on every weekday (regenerate before then: :func:`check_schedule`).
    Times are floating (no offset): Prefect localizes them to the schedule's ``timezone``.
    """
    if last_year < first_year:
        msg = f"last_year {last_year} is before first_year {first_year}"
        raise ValueError(msg)
    stamp = run_time.strftime("T%H%M%S")
    lines = [
        f"DTSTART:{first_year:04d}0101{stamp}",
        (
            "RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;"
            f"BYHOUR={run_time.hour};BYMINUTE={run_time.minute};BYSECOND=0"
        ),
    ]
    for year in range(first_year, last_year + 1):
        closed = sorted(holidays(year))
        if closed:
            lines.append("EXDATE:" + ",".join(day.strftime("%Y%m%d") + stamp for day in closed))
    return "\n".join(lines)


def rrule_years(rrule: str) -> tuple[int, int]:
    """The (first, last) years a generated rule covers: its ``DTSTART`` year and its last ``EXDATE`` year."""
    start = re.search(r"^DTSTART:(\d{4})", rrule, flags=re.MULTILINE)
    excluded = re.findall(r"(\d{4})\d{4}T\d{6}", "\n".join(re.findall(r"^EXDATE:(.*)$", rrule, re.MULTILINE)))
    if start is None or not excluded:
        msg = "the rule has no DTSTART or no EXDATE line: it was not made by nightly_rrule"
        raise ValueError(msg)
    return int(start.group(1)), max(int(year) for year in excluded)


def schedule_block(first_year: int, last_year: int, *, indent: int = 6) -> str:
    """The YAML lines (between and including the markers) of the nightly deployment's ``schedules`` list."""
    pad = " " * indent
    rule = nightly_rrule(first_year, last_year)
    body = "\n".join(f"{pad}    {line}" for line in rule.splitlines())
    return (
        f"{pad}{SCHEDULE_BEGIN_MARKER}\n"
        f"{pad}# Weekdays {NIGHTLY_RUN_TIME:%H:%M} New York, "
        f"NYSE holidays {first_year}-{last_year} excluded.\n"
        f"{pad}- rrule: |-\n{body}\n"
        f"{pad}  timezone: {SCHEDULE_TIMEZONE}\n"
        f"{pad}  active: true\n"
        f"{pad}{SCHEDULE_END_MARKER}"
    )


def _marker_span(text: str, *, path: Path) -> tuple[int, int, int]:
    """(start of the BEGIN line, end of the END line, indentation) of the generated block in ``text``."""
    begin = text.find(SCHEDULE_BEGIN_MARKER)
    end = text.find(SCHEDULE_END_MARKER)
    if begin < 0 or end < begin:
        msg = f"{path} has no '{SCHEDULE_BEGIN_MARKER}' ... '{SCHEDULE_END_MARKER}' block"
        raise ConfigError(msg)
    line_start = text.rfind("\n", 0, begin) + 1
    return line_start, end + len(SCHEDULE_END_MARKER), begin - line_start


def write_schedule(path: Path, *, first_year: int, last_year: int) -> str:
    """Replace the generated schedule block of ``prefect.yaml`` at ``path``; returns the new rule."""
    text = Path(path).read_text()
    start, stop, indent = _marker_span(text, path=Path(path))
    Path(path).write_text(text[:start] + schedule_block(first_year, last_year, indent=indent) + text[stop:])
    return nightly_rrule(first_year, last_year)


def committed_schedule(path: Path, *, deployment: str = NIGHTLY_DEPLOYMENT) -> dict[str, Any]:
    """The first schedule of ``deployment`` in the ``prefect.yaml`` at ``path``, as written."""
    document = yaml.safe_load(Path(path).read_text())
    for entry in document.get("deployments") or []:
        if entry.get("name") == deployment:
            schedules = entry.get("schedules") or []
            if not schedules:
                msg = f"deployment {deployment!r} in {path} has no schedule"
                raise ConfigError(msg)
            return dict(schedules[0])
    msg = f"{path} has no deployment named {deployment!r}"
    raise ConfigError(msg)


def check_schedule(path: Path, *, today: date | None = None) -> list[str]:
    """Problems with the committed nightly schedule (empty when it is current).

    The rule must equal :func:`nightly_rrule` for the years it covers, be in ``America/New_York`` and cover at
    least :data:`MIN_SCHEDULE_HORIZON_YEARS` years after ``today``.
    """
    schedule = committed_schedule(path)
    rule = str(schedule.get("rrule") or "")
    if not rule:
        return [f"the nightly schedule in {path} is not an rrule: holidays cannot be excluded"]
    problems: list[str] = []
    first, last = rrule_years(rule)
    if rule.strip() != nightly_rrule(first, last):
        problems.append(f"the rule differs from nightly_rrule({first}, {last}): regenerate it")
    if schedule.get("timezone") != SCHEDULE_TIMEZONE:
        problems.append(f"timezone is {schedule.get('timezone')!r}, expected {SCHEDULE_TIMEZONE!r}")
    horizon = (today or date.today()).year + MIN_SCHEDULE_HORIZON_YEARS
    if last < horizon:
        problems.append(f"holidays are listed through {last} only; extend to {horizon} or later")
    return problems


def next_night(after: datetime, *, run_time: clock_time = NIGHTLY_RUN_TIME) -> datetime:
    """The first nightly run (New York time, a trading day at ``run_time``) strictly after ``after``."""
    local = after.astimezone(EXCHANGE_TZ)
    for day in trading_days(local.date(), local.date() + timedelta(days=14)):
        moment = datetime.combine(day, run_time, tzinfo=EXCHANGE_TZ)
        if moment > local:
            return moment
    msg = f"no trading day within two weeks of {local.date()}"
    raise ValueError(msg)
