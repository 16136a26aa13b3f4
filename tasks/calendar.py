"""Prefect task of the nightly trading-day check: reads this flow run, asks :mod:`stairways.night_calendar`."""

from uuid import UUID

from prefect import get_run_logger, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.context import FlowRunContext
from prefect.runtime import flow_run as runtime_flow_run

from stairways.night_calendar import NightDecision, decide_night

__all__ = ["check_trading_day"]


def _current_flow_run() -> FlowRun | None:
    """The flow run this code runs in (from the run context, else from the API), or None outside a run."""
    context = FlowRunContext.get()
    if context is not None and context.flow_run is not None:
        return context.flow_run
    run_id = runtime_flow_run.id
    if run_id is None:
        return None
    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(str(run_id)))


@task(name="check-trading-day")
def check_trading_day() -> NightDecision:
    """Whether this night runs: a run the schedule created for a non-trading day skips, any other run runs.

    The scheduled date is the New York date of the run's expected start (what
    ``prefect.runtime.flow_run.scheduled_start_time`` returns); ``auto_scheduled`` tells scheduled runs from
    manual ones (Run button, ``prefect deployment run``, a direct call).
    """
    current = _current_flow_run()
    if current is None:
        decision = decide_night(None, auto_scheduled=False)
    else:
        decision = decide_night(current.expected_start_time, auto_scheduled=bool(current.auto_scheduled))
    get_run_logger().info("trading-day check: %s", decision.reason)
    return decision
