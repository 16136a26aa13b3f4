"""What changed since the previous night: the previous night is the last finished top-level run before."""

import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from stairways.night_history import since_previous_night


def _night(client: MlflowClient, experiment: str, status: str, **tags: str) -> str:
    run = client.create_run(experiment, tags=tags)
    client.log_param(run.info.run_id, "seed", tags.pop("seed", "3"))
    if status != "RUNNING":
        client.set_terminated(run.info.run_id, status=status)
    time.sleep(0.01)  # distinct start times
    return run.info.run_id


def test_the_previous_finished_night_is_compared_and_only_what_differs_is_listed(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("nights", artifact_location=str(tmp_path / "artifacts"))
    first = _night(client, experiment, "FINISHED", **{"data.digest": "a", "gate.verdict": "failed"})
    assert since_previous_night(client, client.get_run(first)) == (None, None)

    good = _night(client, experiment, "FINISHED", **{"data.digest": "b", "gate.verdict": "failed"})
    crashed = _night(client, experiment, "FAILED", **{"data.digest": "c"})
    child = client.create_run(experiment, tags={"mlflow.parentRunId": good, "data.digest": "z"}).info.run_id
    client.set_terminated(child)
    tonight = _night(
        client, experiment, "RUNNING", **{"data.digest": "d", "gate.verdict": "passed", "seed": "4"}
    )

    previous, changes = since_previous_night(client, client.get_run(tonight))
    assert previous == good  # not the crashed night, not a nested cycle run, not the first night
    assert crashed != previous
    assert {(change.what, change.previous, change.tonight) for change in changes} == {
        ("data digest", "b", "d"),
        ("gate verdict", "failed", "passed"),
        ("config seed", "3", "4"),
    }
