"""The local stack's building blocks and the committed deployments file, without starting any server."""

import ast
import asyncio
import http.server
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from market.calendar import EXCHANGE_TZ, holidays, trading_days
from stairways.errors import ConfigError
from stairways.serve import (
    NIGHTLY_RUN_TIME,
    SCHEDULE_TIMEZONE,
    LocalStack,
    StackError,
    StackSettings,
    check_schedule,
    committed_schedule,
    free_port,
    nightly_rrule,
    rrule_years,
    start_service,
    stop_service,
    wait_for_http,
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
    assert set(deployments) == {"nightly-retrain", "retrain-adhoc"}
    for entry in deployments.values():
        assert entry["entrypoint"] == "flows/retrain.py:nightly_retrain"
        assert entry["work_pool"]["name"] == "stairways-local"
        assert entry["parameters"] == {}
    module = ast.parse((REPO / "flows" / "retrain.py").read_text())
    flows = [node.name for node in module.body if isinstance(node, ast.FunctionDef)]
    assert "nightly_retrain" in flows
    assert deployments["retrain-adhoc"]["schedules"] == []


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


# -- settings and environments -------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "example.com"])
def test_stack_refuses_to_bind_beyond_loopback(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        StackSettings(host=host)


def test_worker_gets_the_servers_and_the_checkout_and_nothing_inherited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://elsewhere:4200/api")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    monkeypatch.setenv("STAIRWAYS_HOME", "/elsewhere")
    stack = LocalStack(
        StackSettings(
            prefect_port=4301,
            mlflow_port=5301,
            state_dir=tmp_path / "state",
            project_dir=tmp_path,
            worker_environment={"STAIRWAYS_PUSHGATEWAY": "127.0.0.1:9091"},
        )
    )
    worker = stack._worker_environment()
    assert worker["PREFECT_API_URL"] == "http://127.0.0.1:4301/api"
    assert worker["PREFECT_UI_API_URL"] == "http://127.0.0.1:4301/api"
    assert worker["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5301"
    assert worker["STAIRWAYS_HOME"] == str(tmp_path.resolve())
    assert worker["STAIRWAYS_PUSHGATEWAY"] == "127.0.0.1:9091"
    assert worker["PREFECT_HOME"] == str((tmp_path / "state" / "prefect").resolve())
    deploy = stack.deploy_environment()
    assert "STAIRWAYS_HOME" not in deploy  # resolved by the worker at run time, never baked in
    assert deploy["PREFECT_API_URL"] == "http://127.0.0.1:4301/api"
    server = stack._prefect_server_environment()
    assert server["PREFECT_UI_API_URL"] == "http://127.0.0.1:4301/api"
    assert "PREFECT_API_URL" not in server and "MLFLOW_TRACKING_URI" not in server
    assert stack.mlflow_backend_store_uri == f"sqlite:///{(tmp_path / 'state').resolve() / 'mlflow.db'}"


def test_free_port_can_be_bound() -> None:
    import socket

    port = free_port()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))


# -- processes -----------------------------------------------------------------------------------------------

_STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_stop_kills_a_service_that_ignores_sigterm_and_its_children(tmp_path: Path) -> None:
    log = tmp_path / "stubborn.log"
    service = start_service(
        "stubborn",
        [sys.executable, "-c", _STUBBORN],
        env={"PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        log_path=log,
    )
    deadline = time.monotonic() + 10
    while not log.read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(log.read_text().split()[0])
    started = time.monotonic()
    code = stop_service(service, grace_seconds=0.5)
    assert code == -9
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


def test_wait_for_http_fails_fast_when_the_service_dies(tmp_path: Path) -> None:
    service = start_service(
        "dies",
        [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"],
        env={"PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        log_path=tmp_path / "dies.log",
    )
    with pytest.raises(StackError, match="exited with code 3") as raised:
        wait_for_http(f"http://127.0.0.1:{free_port()}/health", timeout=20, service=service)
    assert "boom" in str(raised.value)
    stop_service(service)


def test_wait_for_http_returns_once_healthy_and_times_out_otherwise() -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/health" else 503)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert wait_for_http(f"{base}/health", timeout=5).text == "OK"
        with pytest.raises(StackError, match="HTTP 503"):
            wait_for_http(f"{base}/other", timeout=1, interval=0.2)
    finally:
        server.shutdown()
        server.server_close()


def test_schedule_command_checks_the_committed_file() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "stairways.serve", "schedule", "--file", str(PREFECT_YAML)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "current" in completed.stdout


# -- the dependency pin the deploy step needs ----------------------------------------------------------------


def test_fastapi_treats_null_body_fields_as_missing() -> None:
    """Regression guard: `prefect deploy` sends `{"offset": null, "limit": null}` to a server route declared
    with `offset: int = Body(0)`. fastapi 0.151+ rejects that with 422, so `prefect deploy` fails; 0.150
    applies the defaults (pin fastapi<0.151 with prefect 3.8.8)."""
    import httpx
    from fastapi import Body, FastAPI

    app = FastAPI()

    @app.post("/filter")
    async def read(offset: int = Body(0, ge=0), limit: int = Body(10)) -> dict[str, int]:
        return {"offset": offset, "limit": limit}

    async def post() -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as client:
            return await client.post("/filter", json={"offset": None, "limit": None})

    response = asyncio.run(post())
    assert response.status_code == 200, response.text
    assert response.json() == {"offset": 0, "limit": 10}
