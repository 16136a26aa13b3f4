"""Production-like run: prefect.yaml's deployments on a local Prefect server, an MLflow server and a worker.

Runs are created through the Prefect API as the UI's Run button does (`create_flow_run_from_deployment`).
"""

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.schedules import CronSchedule
from prefect.client.schemas.sorting import FlowRunSort

from market.calendar import EXCHANGE_TZ, REGULAR_CLOSE, is_trading_day
from ops.schedule import NIGHTLY_CRON, NIGHTLY_RUN_TIME, committed_schedule
from ops.stack import LocalStack, running_stack_environment
from stairways.night_calendar import decide_night
from tests.ops.support import (
    PROMOTABLE_PARAMETERS,
    REPORT_ARTIFACT_KEYS,
    SMALL_PARAMETERS,
    alias_version,
    artifact_paths,
    check_registry,
    parent_runs,
    registry_outcome,
    report_artifact_keys,
    run,
    wait_for_final_states,
)

pytestmark = pytest.mark.slow

NIGHTLY = "nightly-retrain/nightly-retrain"
ADHOC = "nightly-retrain/retrain-adhoc"
RUN_TIMEOUT = 600.0


def test_deployments_carry_the_schedule_pool_and_limits(local_stack: LocalStack) -> None:
    async def read() -> tuple:
        async with PrefectClient(api=local_stack.prefect_api_url) as client:
            return await client.read_deployment_by_name(NIGHTLY), await client.read_deployment_by_name(ADHOC)

    nightly, adhoc = run(read())
    assert nightly.entrypoint == adhoc.entrypoint == "flows/retrain.py:nightly_retrain"
    assert nightly.work_pool_name == adhoc.work_pool_name == local_stack.settings.work_pool
    assert nightly.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $STAIRWAYS_HOME }}"}}
    ]
    for deployment, strategy in ((nightly, "CANCEL_NEW"), (adhoc, "ENQUEUE")):
        assert (
            deployment.global_concurrency_limit is not None and deployment.global_concurrency_limit.limit == 1
        )
        assert deployment.concurrency_options.collision_strategy.value == strategy
    assert adhoc.schedules == []
    assert len(nightly.schedules) == 1 and nightly.schedules[0].active
    schedule = nightly.schedules[0].schedule
    assert isinstance(schedule, CronSchedule)
    assert schedule.timezone == "America/New_York"
    committed = committed_schedule(local_stack.project_dir / "prefect.yaml")
    assert schedule.cron == committed["cron"] == NIGHTLY_CRON


def test_next_scheduled_nightly_runs_fire_every_weekday_and_skip_only_holidays(
    local_stack: LocalStack,
) -> None:
    """The server's scheduler materialises upcoming runs: one per weekday at 17:30 New York, after the close.

    Each is auto-scheduled, so the flow's trading-day check applies: it runs on NYSE trading days and skips the
    holidays among them.
    """

    async def scheduled() -> list:
        async with PrefectClient(api=local_stack.prefect_api_url) as client:
            deployment = await client.read_deployment_by_name(NIGHTLY)
            deadline = time.monotonic() + 120
            while True:
                runs = await client.read_flow_runs(
                    deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                    flow_run_filter=FlowRunFilter(
                        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
                    ),
                    sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                    limit=200,
                )
                if len(runs) >= 3 or time.monotonic() > deadline:
                    return runs
                await asyncio.sleep(2)

    runs = run(scheduled())
    assert len(runs) >= 3, "the scheduler created fewer than 3 upcoming nightly runs"
    assert all(flow_run.auto_scheduled for flow_run in runs)
    starts = [flow_run.expected_start_time.astimezone(EXCHANGE_TZ) for flow_run in runs]
    assert starts == sorted(starts) and starts[0] >= datetime.now(UTC) - timedelta(minutes=5)
    for start in starts:
        assert start.weekday() < 5, start
        assert start.time() == NIGHTLY_RUN_TIME and start.time() > REGULAR_CLOSE, start
    # Between the first and last scheduled run, no weekday is missing either.
    day, missing = starts[0].date(), []
    while day <= starts[-1].date():
        if day.weekday() < 5 and day not in {start.date() for start in starts}:
            missing.append(day)
        day += timedelta(days=1)
    assert missing == []
    for flow_run, start in zip(runs, starts, strict=True):
        decision = decide_night(flow_run.expected_start_time, auto_scheduled=flow_run.auto_scheduled)
        assert decision.runs == is_trading_day(start.date()), (start, decision.reason)


def test_adhoc_run_from_the_deployment_completes_and_is_tracked_on_the_servers(
    local_stack: LocalStack,
) -> None:
    async def trigger() -> tuple:
        async with PrefectClient(api=local_stack.prefect_api_url) as client:
            deployment = await client.read_deployment_by_name(ADHOC)
            created = await client.create_flow_run_from_deployment(
                deployment.id, parameters=PROMOTABLE_PARAMETERS
            )
            final = (await wait_for_final_states(client, [created.id], timeout=RUN_TIMEOUT))[created.id]
            summary = (
                await final.state.aresult(raise_on_failure=False) if final.state.is_completed() else None
            )
            keys = await report_artifact_keys(client, created.id)
            task_runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [created.id]}))
            return final, summary, keys, task_runs

    started = time.monotonic()
    flow_run, summary, keys, task_runs = run(trigger())
    elapsed = time.monotonic() - started
    assert flow_run.state.is_completed(), flow_run.state
    assert elapsed < RUN_TIMEOUT
    assert {task_run.state.type for task_run in task_runs} == {StateType.COMPLETED}
    assert {"open-tracking-run", "train-cycle", "close-tracking-run"} <= {
        task_run.name.rsplit("-", 1)[0] for task_run in task_runs
    }
    assert keys & set(REPORT_ARTIFACT_KEYS), keys

    mlflow = MlflowClient(tracking_uri=local_stack.mlflow_url)
    parents = parent_runs(mlflow, flow_run.id)
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.info.artifact_uri.startswith("mlflow-artifacts:/")  # served by the tracking server
    assert isinstance(summary, dict) and summary["mlflow_run_id"] == parent.info.run_id
    assert (
        summary["tracking_uri"] == local_stack.mlflow_url
    )  # the worker's MLFLOW_TRACKING_URI reached the flow
    assert parent.data.metrics["qc.success_percent"] == 100.0
    assert "cycle.score" in parent.data.metrics
    artifacts = artifact_paths(mlflow, parent.info.run_id)
    assert {"config/config.json", "qc/report.md", "labels/report.json", "labels/report.png"} <= artifacts
    stored = list((local_stack.mlflow_artifacts_destination).rglob("report.md"))
    assert stored, "no artifact file landed in the server's --artifacts-destination"

    # With a lenient gate and no champion yet the candidate is registered and promoted.
    outcome = check_registry(mlflow, parent.info.run_id, summary)
    assert registry_outcome(summary) is not None, "the flow registered no model version"
    assert alias_version(mlflow, "champion") is not None, outcome


def test_overlapping_nightly_runs_one_runs_the_other_is_cancelled_cleanly(local_stack: LocalStack) -> None:
    """Limit 1, CANCEL_NEW: of two runs at once one completes, one never starts; no stray MLflow run."""

    async def trigger_two() -> tuple[dict[uuid.UUID, FlowRun], dict[uuid.UUID, object]]:
        async with PrefectClient(api=local_stack.prefect_api_url) as client:
            deployment = await client.read_deployment_by_name(NIGHTLY)
            created = [
                await client.create_flow_run_from_deployment(deployment.id, parameters=SMALL_PARAMETERS)
                for _ in range(2)
            ]
            final = await wait_for_final_states(
                client, [flow_run.id for flow_run in created], timeout=RUN_TIMEOUT
            )
            summaries = {
                flow_run_id: await flow_run.state.aresult(raise_on_failure=False)
                for flow_run_id, flow_run in final.items()
                if flow_run.state.is_completed()
            }
            return final, summaries

    final, summaries = run(trigger_two())
    states = sorted(flow_run.state.type.value for flow_run in final.values())
    assert states == ["CANCELLED", "COMPLETED"], {str(k): v.state for k, v in final.items()}
    mlflow = MlflowClient(tracking_uri=local_stack.mlflow_url)
    for flow_run_id, flow_run in final.items():
        parents = parent_runs(mlflow, flow_run_id)
        if flow_run.state.type is StateType.COMPLETED:
            assert [found.info.status for found in parents] == ["FINISHED"]
            check_registry(mlflow, parents[0].info.run_id, summaries[flow_run_id])
        else:
            assert "concurrency limit" in (flow_run.state.message or "").lower()
            assert flow_run.run_count == 0  # never ran: Scheduled -> Cancelled, nothing it could have written
            assert parents == []
    experiment = mlflow.get_experiment_by_name("stairways-nightly-retrain")
    unfinished = mlflow.search_runs(
        [experiment.experiment_id], filter_string="attributes.status != 'FINISHED'"
    )
    assert unfinished == []


def test_stairways_run_finds_the_running_stack(local_stack: LocalStack) -> None:
    """While `make serve` runs, its client settings are on disk and both servers answer: `stairways run` uses them."""
    assert running_stack_environment(local_stack.settings.state_dir) == local_stack.client_environment()
