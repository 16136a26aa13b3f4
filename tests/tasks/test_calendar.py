"""tasks/calendar.py: the trading-day check reads the flow run it runs in (a real run on a test server)."""

from datetime import datetime

import pytest
from prefect import flow
from prefect.context import FlowRunContext

from market.calendar import EXCHANGE_TZ
from stairways.night_calendar import NightDecision
from tasks.calendar import check_trading_day

CHRISTMAS_EVENING = datetime(2026, 12, 25, 17, 30, tzinfo=EXCHANGE_TZ)


def _as_if_scheduled(moment: datetime) -> None:
    """Make the current flow run look like one the deployment's schedule created for ``moment``.

    The API cannot create an auto-scheduled run (only the server's scheduler does), so the run context's
    copy of the flow run is changed, which is what the task reads.
    """
    context = FlowRunContext.get()
    assert context is not None and context.flow_run is not None
    context.flow_run = context.flow_run.model_copy(
        update={"auto_scheduled": True, "expected_start_time": moment}
    )


@pytest.mark.usefixtures("prefect_server")
def test_a_run_started_by_hand_runs_even_on_a_holiday() -> None:
    @flow
    def night() -> NightDecision:
        return check_trading_day()

    decision = night()
    assert decision.runs and decision.scheduled_session is None
    assert "manual run" in decision.reason


@pytest.mark.usefixtures("prefect_server")
def test_a_scheduled_run_on_a_holiday_skips_and_a_trading_day_runs() -> None:
    @flow
    def scheduled_night(moment: datetime) -> NightDecision:
        _as_if_scheduled(moment)
        return check_trading_day()

    skipped = scheduled_night(CHRISTMAS_EVENING)
    assert not skipped.runs and "Christmas" in skipped.reason
    assert skipped.scheduled_session is not None and skipped.scheduled_session.isoformat() == "2026-12-25"
    ran = scheduled_night(datetime(2026, 12, 24, 17, 30, tzinfo=EXCHANGE_TZ))  # an early close
    assert ran.runs and ran.scheduled_session is not None
