"""stairways/tracking.py: runs left RUNNING by killed nights are found and closed; live nights never are."""

import socket
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from stairways import tracking


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_abandoned_runs_are_failed_and_live_ones_left_alone(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = "nights"
    live = tracking.start_run(tracking_uri=uri, experiment_name=experiment, run_name="live", tags={})
    killed = tracking.start_run(tracking_uri=uri, experiment_name=experiment, run_name="killed", tags={})
    client = MlflowClient(tracking_uri=uri)
    client.set_tag(killed.run_id, "stairways.pid", str(_dead_pid()))
    cycle = tracking.start_child_run(killed, run_name="cycle-1")
    elsewhere = tracking.start_run(
        tracking_uri=uri, experiment_name=experiment, run_name="elsewhere", tags={}
    )
    client.set_tag(elsewhere.run_id, "stairways.host", f"not-{socket.gethostname()}")
    finished = tracking.start_run(tracking_uri=uri, experiment_name=experiment, run_name="done", tags={})
    tracking.end_run(finished, status="FINISHED")

    marked = dict(
        tracking.fail_abandoned_runs(tracking_uri=uri, experiment_name=experiment, max_age_hours=12)
    )
    assert set(marked) == {killed.run_id, cycle.run_id}
    assert "is gone" in marked[killed.run_id]
    assert marked[cycle.run_id] == f"its parent run {killed.run_id} was abandoned"
    status = {run: client.get_run(run).info.status for run in (live.run_id, killed.run_id, cycle.run_id)}
    assert status == {live.run_id: "RUNNING", killed.run_id: "FAILED", cycle.run_id: "FAILED"}
    assert client.get_run(killed.run_id).data.tags[tracking.ABANDONED_TAG] == marked[killed.run_id]
    assert client.get_run(elsewhere.run_id).info.status == "RUNNING"  # another host, and recent

    # once older than any night, another host's run is abandoned, and so is one whose pid now belongs to a
    # live process (here the test's own: a reused pid is not the night that opened the run)
    later = int(time.time() * 1000) + 13 * 3_600_000
    marked = dict(
        tracking.fail_abandoned_runs(
            tracking_uri=uri, experiment_name=experiment, max_age_hours=12, now_ms=later
        )
    )
    assert set(marked) == {elsewhere.run_id, live.run_id}
    assert tracking.fail_abandoned_runs(tracking_uri=uri, experiment_name="no-such", max_age_hours=1) == []
