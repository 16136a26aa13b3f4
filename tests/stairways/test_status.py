"""`stairways status`: the aliases, the last nights with their verdicts and reasons, stuck runs, the next night."""

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from ops.cli import main
from ops.schedule import next_night
from stairways.config import RetrainConfig
from stairways.status import RETURN_METRIC, read_status, status_text

HOUR_MS = 3_600_000


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RetrainConfig:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("nights", artifact_location=str(tmp_path / "artifacts"))
    now_ms = int(time.time() * 1000)

    def night(hours_ago: float, tags: dict[str, str], status: str | None, **extra: object) -> str:
        run = client.create_run(experiment, start_time=now_ms - int(hours_ago * HOUR_MS), tags=tags)
        for key, value in extra.items():
            client.log_metric(run.info.run_id, key, value)  # type: ignore[arg-type]
        if status is not None:
            client.set_terminated(run.info.run_id, status)
        return run.info.run_id

    trained = night(
        50,
        {
            "qc.verdict": "pass",
            "gate.verdict": "passed",
            "registry.promotion": "promoted",
            "prefect.flow_run_id": "f-1",
        },
        "FINISHED",
    )
    client.log_metric(trained, RETURN_METRIC, 1.25)
    client.log_text(
        trained, json.dumps({"passed": True, "reason": "every criterion passed"}), "gate/decision.json"
    )
    night(26, {"qc.verdict": "fail"}, "FAILED")
    night(20, {"qc.verdict": "pass"}, None)  # still RUNNING after 20 hours: stuck
    night(0.5, {"qc.verdict": "pass"}, None)  # running now, not stuck
    client.create_registered_model("agent")
    for number in ("1", "2"):
        client.create_model_version("agent", source=str(tmp_path), run_id=trained)
        client.set_model_version_tag("agent", number, "gate.verdict", "passed")
        client.set_model_version_tag("agent", number, "gate.reason", f"reason {number}")
    client.set_registered_model_alias("agent", "champion", "2")
    client.set_registered_model_alias("agent", "previous-champion", "1")
    return RetrainConfig.model_validate(
        {
            "tracking": {"tracking_uri": uri, "experiment_name": "nights", "max_night_hours": 12},
            "registry": {"model_name": "agent"},
        }
    )


def test_status_reads_aliases_nights_and_stuck_runs(config: RetrainConfig) -> None:
    status = read_status(config, nights=3, next_night=datetime(2026, 12, 8, 22, 30, tzinfo=UTC))
    assert status.champion is not None and status.champion.version == "2"
    assert status.champion.reason == "reason 2" and status.champion.verdict == "passed"
    assert status.previous_champion is not None and status.previous_champion.version == "1"
    assert [night.qc for night in status.nights] == ["pass", "pass", "fail"]  # newest first, three of four
    assert [night.status for night in status.nights] == ["RUNNING", "RUNNING", "FAILED"]
    assert status.nights[2].reason == "stopped: the data failed QC"
    assert [night.started for night in status.stuck] == [status.nights[1].started]
    wider = read_status(config, nights=10)
    trained = wider.nights[-1]
    assert (trained.gate, trained.reason, trained.test_return_pct) == (
        "passed",
        "every criterion passed",
        1.25,
    )
    assert trained.registry == "promoted" and trained.link == f"runs:/{trained.run_id}"
    text = status_text(status)
    assert "champion: version 2" in text and "STUCK" in text and "2026-12-08T22:30" in text


def test_status_without_a_registry_or_nights_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = RetrainConfig.model_validate(
        {"tracking": {"tracking_uri": f"sqlite:///{tmp_path / 'empty.db'}"}}
    )
    status = read_status(config)
    assert status.champion is None and status.nights == [] and status.stuck == []
    assert "champion: none" in status_text(status)


def test_the_command_prints_json(
    config: RetrainConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "night.yaml"
    path.write_text(json.dumps(config.model_dump(mode="json", include={"tracking", "registry"})))
    assert main(["status", "--json", "--nights", "2", "--config", str(path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["champion"]["version"] == "2" and len(printed["nights"]) == 2
    assert printed["next_night"] is not None
    assert main(["status", "--nights", "0", "--config", str(path)]) == 1


def test_the_next_night_is_the_next_trading_day_at_17_30_new_york() -> None:
    friday_evening = datetime(2026, 12, 4, 23, 0, tzinfo=UTC)  # 18:00 New York, after Friday's run
    assert next_night(friday_evening).isoformat() == "2026-12-07T17:30:00-05:00"  # Monday
    before_christmas = datetime(2026, 12, 24, 23, 0, tzinfo=UTC)
    assert next_night(before_christmas).date().isoformat() == "2026-12-28"  # Christmas is no trading day
