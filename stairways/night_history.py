"""What changed since the previous night: tonight's MLflow run against the nightly experiment's one before it.

The previous night is the latest top-level run of the same experiment that started before tonight's and
finished (a crashed or still-running night is skipped). Compared: the data (digest, rows, windows), the code
(git commit), the config (every logged parameter), the model (the champion the night started from and the
version it registered) and the verdicts (QC, gate, registry).
"""

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from stairways.night_report import Change, changes_between, params_changes

__all__ = ["COMPARED_TAGS", "previous_night", "since_previous_night"]

COMPARED_TAGS: dict[str, str] = {
    "data.digest": "data digest",
    "data.rows": "data rows",
    "window.train_start": "training window start",
    "window.test_end": "test window end",
    "git_sha": "code (git commit)",
    "config_hash": "config digest",
    "drift.champion_run": "champion compared for drift (run)",
    "registry.version": "registered version",
    "qc.verdict": "QC verdict",
    "gate.verdict": "gate verdict",
    "registry.promotion": "registry outcome",
    "registry.champion": "champion after the night",
}


def previous_night(client: MlflowClient, run: Run) -> Run | None:
    """The experiment's latest finished top-level run that started before ``run``; None when there is none."""
    runs = client.search_runs(
        [run.info.experiment_id],
        filter_string=(
            "tags.`mlflow.parentRunId` IS NULL and attributes.status = 'FINISHED' "
            f"and attributes.start_time < {int(run.info.start_time or 0)}"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def since_previous_night(client: MlflowClient, tonight: Run) -> tuple[str | None, list[Change] | None]:
    """(the previous night's run id, the changes); (None, None) when tonight is the experiment's first night."""
    previous = previous_night(client, tonight)
    if previous is None:
        return None, None
    changes = changes_between(previous.data.tags, tonight.data.tags, labels=COMPARED_TAGS)
    changes += params_changes(previous.data.params, tonight.data.params)
    return previous.info.run_id, changes
