"""Whether tonight's nightly run goes ahead: the trading-day check behind the deployment's plain cron schedule.

The ``nightly-retrain`` deployment fires every weekday evening (``prefect.yaml``, :mod:`ops.schedule`); a cron
cannot skip exchange holidays, so the flow asks :func:`decide_night` first. A run the scheduler created for a
day that is not a trading day (New York date of its scheduled start, :mod:`market.calendar`) skips: it ends at
once, Completed, with the reason. Runs a person started (the Run button, ``prefect deployment run``,
``stairways run``) always run. Early-close days hold a session, so their nights run.
"""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from market.calendar import DEFAULT_EXCHANGE, EXCHANGE_TZ, holidays, is_trading_day

__all__ = ["NightDecision", "decide_night"]


@dataclass(frozen=True)
class NightDecision:
    """Whether the night runs, and why."""

    runs: bool
    reason: str
    scheduled_session: date | None = None
    """New York date of the scheduled start when the scheduler created the run, else None."""

    def skipped_result(self) -> dict[str, Any]:
        """The flow's result for a skipped night: what was skipped and why."""
        session = self.scheduled_session
        return {
            "skipped": True,
            "reason": self.reason,
            "scheduled_session": None if session is None else session.isoformat(),
        }


def decide_night(
    scheduled_start: datetime | None, *, auto_scheduled: bool, exchange: str = DEFAULT_EXCHANGE
) -> NightDecision:
    """Run unless the scheduler created this run for a day on which ``exchange`` holds no session.

    ``scheduled_start`` is the run's scheduled (expected) start, timezone-aware; ``auto_scheduled`` is True
    for runs the deployment's schedule created. A manual run, or one with no scheduled start, always runs.
    """
    if not auto_scheduled or scheduled_start is None:
        return NightDecision(True, "not created by the schedule (a manual run): runs on any day")
    if scheduled_start.tzinfo is None:
        msg = f"scheduled_start {scheduled_start} has no timezone"
        raise ValueError(msg)
    day = scheduled_start.astimezone(EXCHANGE_TZ).date()
    if is_trading_day(day, exchange=exchange):
        return NightDecision(True, f"{day} is an {exchange} trading day", day)
    closure = holidays(day.year, exchange=exchange).get(day) or day.strftime("%A")
    reason = f"skipped: {day} is not an {exchange} trading day ({closure}); no new session to retrain on"
    return NightDecision(False, reason, day)
