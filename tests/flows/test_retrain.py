"""The nightly flow against a real temporary Prefect server and a real MLflow SQLite store."""

import asyncio
import shutil
from pathlib import Path

import mlflow
import polars as pl
import pytest
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.sorting import TaskRunSort

from core.errors import ConfigError, DataQualityError
from flows.retrain import nightly_retrain
from stairways import pipeline
from stairways.config import RetrainConfig
from tasks.training import WORK_ROOT

pytestmark = pytest.mark.usefixtures("prefect_server")


def _config(tmp_path: Path, **data: object) -> RetrainConfig:
    return RetrainConfig.model_validate(
        {
            "seed": 3,
            "data": {"synthetic": {"sessions": 8}, **data},
            "window": {"selection_sessions": 2, "test_sessions": 2, "min_train_sessions": 3},
            "tracking": {"experiment_name": f"test-{tmp_path.name}"},
            # These tests prove the flow's wiring (tasks, tags, artifacts, caching, retries, scratch files), not
            # what training learns: two short cycles keep every stage, at a fraction of the default budget.
            "training": CHEAP_TRAINING,
        }
    )


CHEAP_TRAINING = {
    "cycles": 2,
    "steps_per_cycle": 512,
    "progress_bar": False,
    "ppo": {"n_envs": 2, "n_steps": 128, "batch_size": 128},
}


def _artifacts(client: MlflowClient, run_id: str, path: str = "") -> set[str]:
    found: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        found |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def _task_states(flow_run_id: str) -> dict[str, str]:
    async def read() -> dict[str, str]:
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                sort=TaskRunSort.EXPECTED_START_TIME_ASC,
                limit=200,
            )
        return {run.name.rsplit("-", 1)[0]: run.state.name for run in runs if run.state}

    return asyncio.run(read())


def test_nightly_flow_logs_everything_and_a_repeated_night_reuses_cached_data_steps(tmp_path: Path) -> None:
    """One night's records (tags, artifacts, curves, the night report, no scratch left), then the same night
    again: its data steps come from the cache and its report compares it with the first."""
    config = _config(tmp_path)
    first = nightly_retrain(config, return_state=True)
    assert first.is_completed()
    summary = first.result()
    client = MlflowClient()
    run = client.get_run(summary["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    for tag in ("prefect.flow_run_id", "git_sha", "config_hash", "data.digest"):
        assert run.data.tags.get(tag), tag
    assert run.data.tags["qc.verdict"] == "pass"
    # Links both ways: MLflow's own source tags and a description naming the full Prefect flow-run id.
    assert run.data.tags["mlflow.source.git.commit"] == run.data.tags["git_sha"]
    assert run.data.tags["mlflow.source.name"] == "flows/retrain.py:nightly_retrain"
    assert run.data.tags["prefect.flow_run_id"] in run.data.tags["mlflow.note.content"]
    artifacts = _artifacts(client, run.info.run_id)
    assert {
        "config/config.json",
        "data/dataset.json",
        "data/bars.parquet",
        "qc/gx_result.json",
        "qc/report.md",
        "features/summary.json",
        "labels/report.json",
        "labels/report.png",
        "labels/windows.json",
        "labels/signal_cv.json",
        "labels/signal_calibration.json",
        "labels/signal_calibration.png",
        "labels/meta_report.json",
    } <= artifacts
    dataset = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/data/dataset.json")
    inputs = run.inputs.dataset_inputs
    assert [item.dataset.digest for item in inputs] == [dataset["digest"][:36]]
    assert dataset["symbols"] == ["MSFT", "NVDA"]
    assert dataset["sessions"] == 8
    assert (
        summary["windows"]["train_end"]
        < summary["windows"]["selection_start"]
        < summary["windows"]["test_start"]
    )
    assert run.data.metrics["features.count"] == len(summary["features"])
    # the controller's rollouts and PPO's updates are curves (one point per rollout/update at its env step)
    assert "cycles/controller.png" in artifacts
    for name in ("controller.greedy_trades_per_day", "controller.ticket_cost", "ppo.entropy"):
        history = client.get_metric_history(run.info.run_id, name)
        steps = [metric.step for metric in history]
        assert len(steps) >= 2 and steps == sorted(steps) and steps[0] > 0, name
    assert "night.controller_health.score" in run.data.metrics
    report = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/gate/report.md")
    assert "**Reward controller health:**" in report
    # the night report: one self-contained page, logged to MLflow, every section present
    assert summary["report"] == f"runs:/{run.info.run_id}/report/night.html"
    page = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/report/night.html")
    for heading in (
        "Data and QC",
        "Labels (triple barrier)",
        "Windows",
        "Learning curves",
        "Reward controller",
        "Paired sessions",
        "compounded over 2 sessions",
        "A sample session",
        "Transaction costs",
        "Drift",
        "Since the previous night",
    ):
        assert heading in page, heading
    assert page.count('src="data:image/png;base64,') >= 4
    assert 'src="http' not in page and "<script" not in page and "<link" not in page  # self-contained
    # a good night leaves no scratch files behind (everything worth keeping is in MLflow)
    assert not (WORK_ROOT / run.data.tags["prefect.flow_run_id"]).exists()

    second = nightly_retrain(config, return_state=True)
    assert second.is_completed()
    states = _task_states(str(second.state_details.flow_run_id))
    for name in ("normalize-bars", "run-quality-checks", "build-features", "build-labels", "build-signal"):
        assert states[name] == "Cached", name
    assert states["load-market-data"] == "Completed"
    again = second.result()
    page = mlflow.artifacts.load_text(f"runs:/{again['mlflow_run_id']}/report/night.html")
    changes = page.split("Since the previous night", 1)[1]
    assert "registered version" in changes  # version 1 then version 2; the same data and config
    assert "data digest" not in changes and "config seed" not in changes


def test_failed_qc_stops_before_features(tmp_path: Path) -> None:
    # The night's own bars (normalized as the flow would), without running a whole good night first.
    bars = pipeline.prepare_bars(pipeline.load_market(_config(tmp_path)).bars, _config(tmp_path)).bars
    broken = bars.with_columns(
        pl.when(pl.int_range(pl.len()) % 97 == 5)
        .then(pl.col("low") * 0.5)
        .otherwise(pl.col("high"))
        .alias("high")
    )
    paths = {}
    for symbol in ("NVDA", "MSFT"):
        path = tmp_path / f"{symbol}.parquet"
        broken.filter(pl.col("symbol") == symbol).drop("symbol").write_parquet(path)
        paths[symbol] = str(path)
    config = _config(tmp_path, source="export", export_paths=paths)
    with pytest.raises(DataQualityError, match="high"):
        nightly_retrain(config)
    client = MlflowClient()
    experiment = client.get_experiment_by_name(config.tracking.experiment_name)
    failed = [run for run in client.search_runs([experiment.experiment_id]) if run.info.status == "FAILED"]
    assert len(failed) == 1
    artifacts = _artifacts(client, failed[0].info.run_id)
    assert {"qc/gx_result.json", "qc/report.md"} <= artifacts
    assert not any(path.startswith(("features/", "labels/")) for path in artifacts)
    assert failed[0].data.tags["qc.verdict"] == "fail"


@pytest.mark.slow
def test_flow_retry_resumes_training_from_the_last_completed_cycle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash in cycle 2 and a flow-run retry: cycle 1 is not trained again, cycle 2 restarts from its checkpoint."""
    import tasks.training

    calls: list[tuple[int, str | None]] = []
    real_run_cycle = tasks.training.run_cycle

    def crashing_once(cycle: int, **kwargs: object) -> object:
        previous = kwargs["previous"]
        calls.append((cycle, None if previous is None else Path(str(previous)).name))
        if cycle == 2 and sum(1 for called, _ in calls if called == 2) == 1:
            raise RuntimeError("simulated worker crash in cycle 2")
        return real_run_cycle(cycle, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tasks.training, "run_cycle", crashing_once)
    config = _config(tmp_path).model_copy(
        update={
            "training": RetrainConfig.model_validate(
                {
                    "training": {
                        "cycles": 2,
                        "steps_per_cycle": 256,
                        "progress_bar": False,
                        "ppo": {"n_envs": 2, "n_steps": 64, "batch_size": 64},
                    }
                }
            ).training
        }
    )
    retrying = nightly_retrain.with_options(retries=1, retry_delay_seconds=0)
    train_cycle_retries = tasks.training.train_cycle.with_options(retries=0)
    monkeypatch.setattr("flows.retrain.train_cycle", train_cycle_retries)
    summary = retrying(config)
    assert [cycle for cycle, _ in calls] == [1, 2, 2]
    assert calls[1][1] == calls[2][1] == "cycle-1"
    assert [entry["cycle"] for entry in summary["cycles"]] == [1, 2]


def test_a_failed_night_keeps_its_scratch_files_and_says_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tasks.training

    def dying(*args: object, output_dir: Path, **kwargs: object) -> None:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "partial-checkpoint").write_text("half written")
        raise ConfigError("training refused")

    monkeypatch.setattr(tasks.training, "run_cycle", dying)
    with pytest.raises(ConfigError, match="training refused") as raised:
        nightly_retrain(_config(tmp_path))
    notes = [note for note in getattr(raised.value, "__notes__", []) if "scratch files are kept at" in note]
    assert len(notes) == 1
    kept = Path(notes[0].split(" kept at ", 1)[1])
    assert kept.is_dir() and kept.parent == WORK_ROOT.resolve()
    shutil.rmtree(kept)
