"""tasks/tracking.py: a tracking run that cannot be set up is closed FAILED, never left RUNNING."""

import errno
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from prefect import flow

import stairways.tracking
from stairways.config import RetrainConfig
from tasks.tracking import open_tracking_run


@pytest.mark.usefixtures("prefect_server")
def test_a_read_only_artifact_store_leaves_one_failed_run_and_no_running_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = RetrainConfig.model_validate({"tracking": {"tracking_uri": uri, "experiment_name": "read-only"}})
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def read_only(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "artifacts"))

    monkeypatch.setattr(stairways.tracking, "log_json", read_only)

    @flow
    def night() -> None:
        open_tracking_run.with_options(retry_delay_seconds=0)(config)

    state = night(return_state=True)
    assert state.is_failed()
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("read-only")
    runs = client.search_runs([experiment.experiment_id])
    # not retried (a read-only store is not transient), and the one run opened is closed FAILED
    assert [run.info.status for run in runs] == ["FAILED"]


@pytest.mark.usefixtures("prefect_server")
def test_the_flow_run_of_an_abandoned_night_is_marked_crashed() -> None:
    from prefect import get_client
    from prefect.states import Running

    from tasks.tracking import _crash_flow_run

    @flow
    def killed_night() -> None:
        """Stands for a night whose process was killed: its flow run is left RUNNING."""

    with get_client(sync_client=True) as client:
        zombie = client.create_flow_run(killed_night, state=Running())
        finished = client.create_flow_run(killed_night)

    @flow
    def next_night() -> None:
        _crash_flow_run(str(zombie.id), "its process 123 on host is gone (killed or crashed)")
        _crash_flow_run(str(finished.id), "not running: left alone")
        _crash_flow_run("00000000-0000-0000-0000-000000000000", "no such run: ignored")

    next_night()
    with get_client(sync_client=True) as client:
        crashed = client.read_flow_run(zombie.id)
        untouched = client.read_flow_run(finished.id)
    assert crashed.state is not None and crashed.state.is_crashed()
    assert "abandoned: its process 123" in (crashed.state.message or "")
    assert untouched.state is not None and not untouched.state.is_crashed()

