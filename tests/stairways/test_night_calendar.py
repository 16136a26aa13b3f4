"""The trading-day check of scheduled nights (Prefect-free)."""

from datetime import UTC, date, datetime

import pytest

from market.calendar import EXCHANGE_TZ
from stairways.night_calendar import NightDecision, decide_night


def _evening(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 17, 30, tzinfo=EXCHANGE_TZ)


def test_a_scheduled_run_on_a_holiday_skips_and_says_why() -> None:
    decision = decide_night(_evening(date(2026, 12, 25)), auto_scheduled=True)
    assert decision == NightDecision(
        False,
        "skipped: 2026-12-25 is not an XNYS trading day (Christmas); no new session to retrain on",
        date(2026, 12, 25),
    )
    assert decision.skipped_result() == {
        "skipped": True,
        "reason": decision.reason,
        "scheduled_session": "2026-12-25",
    }


def test_one_off_closures_and_weekends_skip_too() -> None:
    mourning = decide_night(_evening(date(2025, 1, 9)), auto_scheduled=True)
    assert not mourning.runs and "Special closure" in mourning.reason
    saturday = decide_night(_evening(date(2026, 12, 5)), auto_scheduled=True)
    assert not saturday.runs and "(Saturday)" in saturday.reason


@pytest.mark.parametrize(
    "day",
    [date(2026, 12, 24), date(2026, 11, 27), date(2026, 12, 28)],  # two early closes, a regular session
)
def test_scheduled_runs_on_trading_days_run(day: date) -> None:
    decision = decide_night(_evening(day), auto_scheduled=True)
    assert decision.runs and decision.scheduled_session == day and "is an XNYS trading day" in decision.reason


def test_manual_runs_always_run() -> None:
    christmas = _evening(date(2026, 12, 25))
    assert decide_night(christmas, auto_scheduled=False).runs
    assert decide_night(None, auto_scheduled=True).runs
    assert decide_night(christmas, auto_scheduled=False).scheduled_session is None


def test_the_scheduled_date_is_the_new_york_date_not_the_utc_one() -> None:
    # 04:30 UTC on Christmas Day is 23:30 on Christmas Eve in New York: a trading day.
    assert decide_night(datetime(2026, 12, 25, 4, 30, tzinfo=UTC), auto_scheduled=True).runs
    # 17:30 New York on Christmas Day is 22:30 UTC the same day.
    assert not decide_night(datetime(2026, 12, 25, 22, 30, tzinfo=UTC), auto_scheduled=True).runs


def test_a_naive_scheduled_start_is_refused() -> None:
    with pytest.raises(ValueError, match="no timezone"):
        decide_night(datetime(2026, 12, 25, 17, 30), auto_scheduled=True)
