"""The nightly schedule and the committed deployments file (prefect.yaml), without a server."""

import ast
import asyncio
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from core.errors import ConfigError
from market.calendar import EXCHANGE_TZ, early_closes, holidays, trading_days
from ops.schedule import (
    NIGHTLY_CRON,
    NIGHTLY_RUN_TIME,
    SCHEDULE_TIMEZONE,
    check_schedule,
    committed_schedule,
)
from stairways.night_calendar import decide_night

REPO = Path(__file__).resolve().parents[2]
PREFECT_YAML = REPO / "prefect.yaml"
SPAN_YEARS = range(2026, 2036)


def _deployments() -> dict[str, dict]:
    document = yaml.safe_load(PREFECT_YAML.read_text())
    return {entry["name"]: entry for entry in document["deployments"]}


def _cron_dates(cron: str, *, start: datetime, end: datetime) -> list[datetime]:
    """Occurrences as the Prefect server computes them (its CronSchedule, timezone applied)."""
    from prefect.server.schemas.schedules import CronSchedule

    schedule = CronSchedule(cron=cron, timezone=SCHEDULE_TIMEZONE)
    return asyncio.run(schedule.get_dates(start=start, end=end))


def _committed_nights(year: int) -> list[datetime]:
    """The committed schedule's occurrences in ``year``, New York time."""
    schedule = committed_schedule(PREFECT_YAML)
    start = datetime(year, 1, 1, tzinfo=EXCHANGE_TZ)
    end = datetime(year, 12, 31, 23, 59, tzinfo=EXCHANGE_TZ)
    return [moment.astimezone(EXCHANGE_TZ) for moment in _cron_dates(schedule["cron"], start=start, end=end)]


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


def test_committed_schedule_is_the_weekday_cron_in_new_york() -> None:
    assert check_schedule(PREFECT_YAML) == []
    schedule = committed_schedule(PREFECT_YAML)
    assert schedule == {"cron": "30 17 * * 1-5", "timezone": "America/New_York", "active": True}
    assert schedule["cron"] == NIGHTLY_CRON
    assert "rrule" not in PREFECT_YAML.read_text()


@pytest.mark.parametrize("year", SPAN_YEARS)
def test_cron_fires_every_weekday_at_17_30_new_york_across_dst(year: int) -> None:
    """Prefect's scheduler code computes one run per weekday of the year, at 17:30 New York (EST and EDT)."""
    nights = _committed_nights(year)
    assert all(moment.time() == NIGHTLY_RUN_TIME for moment in nights)
    days = [moment.date() for moment in nights]
    weekdays = [
        date(year, 1, 1) + timedelta(days=offset)
        for offset in range((date(year, 12, 31) - date(year, 1, 1)).days + 1)
        if (date(year, 1, 1) + timedelta(days=offset)).weekday() < 5
    ]
    assert days == weekdays
    assert {moment.utcoffset() for moment in nights} == {timedelta(hours=-5), timedelta(hours=-4)}


@pytest.mark.parametrize("year", SPAN_YEARS)
def test_scheduled_nights_skip_every_holiday_and_run_every_trading_day(year: int) -> None:
    """The trading-day check on each cron occurrence: exactly the NYSE holidays skip, early closes run."""
    decisions = {
        moment.date(): decide_night(moment, auto_scheduled=True) for moment in _committed_nights(year)
    }
    skipped = {day for day, decision in decisions.items() if not decision.runs}
    ran = {day for day, decision in decisions.items() if decision.runs}
    assert skipped == set(holidays(year))
    assert ran == set(trading_days(date(year, 1, 1), date(year, 12, 31)))
    assert early_closes(year) <= ran
    for day in skipped:
        assert decisions[day].scheduled_session == day
        assert str(day) in decisions[day].reason and holidays(year)[day] in decisions[day].reason


def test_manual_runs_run_on_holidays() -> None:
    christmas = datetime(2026, 12, 25, 17, 30, tzinfo=EXCHANGE_TZ)
    assert decide_night(christmas, auto_scheduled=False).runs
    assert not decide_night(christmas, auto_scheduled=True).runs


def test_check_schedule_reports_an_edited_cron_a_timezone_and_an_rrule(tmp_path: Path) -> None:
    copy = tmp_path / "prefect.yaml"
    shutil.copy(PREFECT_YAML, copy)
    text = copy.read_text()
    copy.write_text(text.replace('cron: "30 17 * * 1-5"', 'cron: "30 18 * * 1-5"'))
    assert check_schedule(copy) == ["cron is '30 18 * * 1-5', expected '30 17 * * 1-5'"]
    nightly = text.index("  - name: nightly-retrain")
    copy.write_text(text[:nightly] + text[nightly:].replace("timezone: America/New_York", "timezone: UTC", 1))
    assert check_schedule(copy) == ["timezone is 'UTC', expected 'America/New_York'"]
    copy.write_text(text.replace('cron: "30 17 * * 1-5"', 'rrule: "FREQ=DAILY"'))
    assert any("not a cron (rrule)" in problem for problem in check_schedule(copy))
    without = tmp_path / "bare.yaml"
    without.write_text("deployments: []\n")
    with pytest.raises(ConfigError, match="no deployment named 'nightly-retrain'"):
        check_schedule(without)
