"""The nightly trading-day schedule and the committed deployments file (prefect.yaml), without a server."""

import ast
import asyncio
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from core.errors import ConfigError
from market.calendar import EXCHANGE_TZ, holidays, trading_days
from ops.schedule import (
    NIGHTLY_RUN_TIME,
    SCHEDULE_TIMEZONE,
    check_schedule,
    committed_schedule,
    nightly_rrule,
    rrule_years,
    write_schedule,
)

REPO = Path(__file__).resolve().parents[2]
PREFECT_YAML = REPO / "prefect.yaml"


def _deployments() -> dict[str, dict]:
    document = yaml.safe_load(PREFECT_YAML.read_text())
    return {entry["name"]: entry for entry in document["deployments"]}


def _schedule_dates(rule: str, *, start: datetime, end: datetime) -> list[datetime]:
    """Occurrences as the Prefect server computes them (its RRuleSchedule, timezone applied)."""
    from prefect.server.schemas.schedules import RRuleSchedule

    schedule = RRuleSchedule(rrule=rule, timezone=SCHEDULE_TIMEZONE)
    return asyncio.run(schedule.get_dates(start=start, end=end))


# -- prefect.yaml --------------------------------------------------------------------------------------------


def test_deployments_run_the_nightly_flow_from_the_checkout_on_the_local_pool() -> None:
    document = yaml.safe_load(PREFECT_YAML.read_text())
    assert document["pull"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $STAIRWAYS_HOME }}"}}
    ]
    deployments = _deployments()
    assert set(deployments) == {"nightly-retrain", "retrain-adhoc", "weekly-tune", "tune-adhoc"}
    entrypoints = {
        "nightly-retrain": "flows/retrain.py:nightly_retrain",
        "retrain-adhoc": "flows/retrain.py:nightly_retrain",
        "weekly-tune": "flows/tune.py:tune",
        "tune-adhoc": "flows/tune.py:tune",
    }
    for name, entry in deployments.items():
        assert entry["entrypoint"] == entrypoints[name]
        assert entry["work_pool"]["name"] == "stairways-local"
        assert entry["parameters"] == {}
        path, function = entry["entrypoint"].split(":")
        module = ast.parse((REPO / path).read_text())
        assert function in [node.name for node in module.body if isinstance(node, ast.FunctionDef)]
    assert deployments["retrain-adhoc"]["schedules"] == []
    assert deployments["tune-adhoc"]["schedules"] == []


def test_weekly_tune_runs_on_weekends_one_study_run_at_a_time() -> None:
    deployments = _deployments()
    (schedule,) = deployments["weekly-tune"]["schedules"]
    assert schedule["cron"].split()[-1] in {"6", "0", "0,6", "6,0"}  # Saturday and/or Sunday
    assert schedule["timezone"] == "America/New_York"
    for name in ("weekly-tune", "tune-adhoc"):
        assert deployments[name]["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}


def test_one_nightly_run_at_a_time() -> None:
    deployments = _deployments()
    assert deployments["nightly-retrain"]["concurrency_limit"] == {
        "limit": 1,
        "collision_strategy": "CANCEL_NEW",
    }
    assert deployments["retrain-adhoc"]["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}


def _strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [*map(str, value), *(text for item in value.values() for text in _strings(item))]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return [str(value)]


def test_no_secrets_or_addresses_in_the_deployments_file() -> None:
    values = [text.lower() for text in _strings(yaml.safe_load(PREFECT_YAML.read_text()))]
    for word in ("password", "token", "secret", "api_key", "://", "@"):
        assert not [text for text in values if word in text], word


# -- the nightly schedule ------------------------------------------------------------------------------------


def test_committed_schedule_equals_the_generator_and_reaches_next_year() -> None:
    assert check_schedule(PREFECT_YAML) == []
    schedule = committed_schedule(PREFECT_YAML)
    assert schedule["timezone"] == "America/New_York"
    _, last = rrule_years(schedule["rrule"])
    assert last >= date.today().year + 1


def test_committed_schedule_runs_after_the_close_on_every_trading_day_and_only_then() -> None:
    """Two years of occurrences, computed by Prefect's scheduler code, equal the NYSE trading days."""
    rule = committed_schedule(PREFECT_YAML)["rrule"]
    start = datetime.now(UTC)
    end = start + timedelta(days=730)
    occurrences = _schedule_dates(rule, start=start, end=end)
    local = [moment.astimezone(EXCHANGE_TZ) for moment in occurrences]
    assert all(moment.time() == NIGHTLY_RUN_TIME for moment in local)
    expected = {
        day
        for day in trading_days(start.astimezone(EXCHANGE_TZ).date(), end.astimezone(EXCHANGE_TZ).date())
        if start <= datetime.combine(day, NIGHTLY_RUN_TIME, tzinfo=EXCHANGE_TZ) <= end
    }
    assert {moment.date() for moment in local} == expected
    assert len(local) == len(expected)


def test_rule_skips_holidays_and_keeps_early_closes() -> None:
    rule = nightly_rrule(2026, 2026)
    dates = {
        moment.astimezone(EXCHANGE_TZ).date()
        for moment in _schedule_dates(
            rule, start=datetime(2026, 11, 23, tzinfo=UTC), end=datetime(2026, 12, 31, tzinfo=UTC)
        )
    }
    assert date(2026, 11, 26) not in dates  # Thanksgiving
    assert date(2026, 11, 27) in dates  # 13:00 early close: the run at 17:30 still follows it
    assert date(2026, 12, 25) not in dates
    assert date(2026, 12, 24) in dates
    assert len(nightly_rrule(2026, 2035)) < 6500  # Prefect's limit on an rrule string


def test_check_schedule_reports_a_stale_horizon_and_an_edited_rule(tmp_path: Path) -> None:
    copy = tmp_path / "prefect.yaml"
    shutil.copy(PREFECT_YAML, copy)
    _, last = rrule_years(committed_schedule(copy)["rrule"])
    assert any("through" in problem for problem in check_schedule(copy, today=date(last, 6, 1)))
    copy.write_text(copy.read_text().replace("BYMINUTE=30", "BYMINUTE=45"))
    assert any("differs" in problem for problem in check_schedule(copy))


def test_write_schedule_replaces_only_the_generated_block(tmp_path: Path) -> None:
    copy = tmp_path / "prefect.yaml"
    shutil.copy(PREFECT_YAML, copy)
    before = copy.read_text()
    rule = write_schedule(copy, first_year=2030, last_year=2031)
    after = copy.read_text()
    assert committed_schedule(copy)["rrule"] == rule
    assert rrule_years(rule) == (2030, 2031)
    assert sum(1 for day in holidays(2031)) == rule.splitlines()[-1].count(",") + 1
    head, tail = (
        before.split("# BEGIN generated")[0],
        before.split("# END generated: nightly trading-day schedule")[1],
    )
    assert after.startswith(head) and after.endswith(tail)
    without_markers = tmp_path / "bare.yaml"
    without_markers.write_text("deployments: []\n")
    with pytest.raises(ConfigError, match="BEGIN generated"):
        write_schedule(without_markers, first_year=2030, last_year=2031)
