"""The nightly schedule of the ``nightly-retrain`` deployment in ``prefect.yaml``, and when the next night is.

The deployment runs on a plain cron, readable in the Prefect UI: every weekday at 17:30 New York
(:data:`NIGHTLY_CRON` in :data:`SCHEDULE_TIMEZONE`), after the 16:00 close. A cron cannot skip exchange
holidays; the flow does: its first task (``tasks.calendar.check_trading_day``, deciding with
:func:`stairways.night_calendar.decide_night`) ends a scheduled run whose New York date is not an NYSE trading
day at once, Completed, with the reason. Manual runs always run. Holidays therefore need no list here, and
closures announced at short notice are skipped as soon as the installed exchange-calendars knows them.
:func:`check_schedule` (``python -m ops.serve schedule``, ``make schedule``) checks the committed schedule.
"""

from datetime import datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import yaml

from core.errors import ConfigError
from market.calendar import EXCHANGE_TZ, trading_days

__all__ = [
    "NIGHTLY_CRON",
    "NIGHTLY_DEPLOYMENT",
    "NIGHTLY_RUN_TIME",
    "SCHEDULE_TIMEZONE",
    "check_schedule",
    "committed_schedule",
    "next_night",
    "nightly_cron",
]

NIGHTLY_DEPLOYMENT = "nightly-retrain"
NIGHTLY_RUN_TIME = clock_time(17, 30)
SCHEDULE_TIMEZONE = str(EXCHANGE_TZ.key)


def nightly_cron(run_time: clock_time = NIGHTLY_RUN_TIME) -> str:
    """Cron expression of the nightly run: ``run_time`` (in :data:`SCHEDULE_TIMEZONE`), Monday to Friday."""
    return f"{run_time.minute} {run_time.hour} * * 1-5"


NIGHTLY_CRON = nightly_cron()


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


def check_schedule(path: Path) -> list[str]:
    """Problems with the committed nightly schedule (empty when it is as expected).

    It must be the cron :data:`NIGHTLY_CRON` in :data:`SCHEDULE_TIMEZONE`, active.
    """
    schedule = committed_schedule(path)
    problems: list[str] = []
    cron = schedule.get("cron")
    if cron is None:
        kind = ", ".join(sorted(set(schedule) - {"timezone", "active"})) or "empty"
        problems.append(f"the nightly schedule is not a cron ({kind}); expected cron {NIGHTLY_CRON!r}")
    elif cron != NIGHTLY_CRON:
        problems.append(f"cron is {cron!r}, expected {NIGHTLY_CRON!r}")
    if schedule.get("timezone") != SCHEDULE_TIMEZONE:
        problems.append(f"timezone is {schedule.get('timezone')!r}, expected {SCHEDULE_TIMEZONE!r}")
    if schedule.get("active", True) is not True:
        problems.append("the nightly schedule is not active")
    return problems


def next_night(after: datetime, *, run_time: clock_time = NIGHTLY_RUN_TIME) -> datetime:
    """The first night that retrains (a trading day at ``run_time``, New York time) strictly after ``after``.

    The cron also fires on holidays, but those runs skip (:mod:`stairways.night_calendar`).
    """
    local = after.astimezone(EXCHANGE_TZ)
    for day in trading_days(local.date(), local.date() + timedelta(days=14)):
        moment = datetime.combine(day, run_time, tzinfo=EXCHANGE_TZ)
        if moment > local:
            return moment
    msg = f"no trading day within two weeks of {local.date()}"
    raise ValueError(msg)
