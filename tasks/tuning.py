"""Prefect tasks of tuning: the night's opt-in recommended config, and the study's stages (flows/tune.py)."""

import logging
import re
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from stairways import tracking
from stairways.config import RetrainConfig
from stairways.tuning.publish import publish_ablation, publish_study, start_study_run
from stairways.tuning.recommendation import apply_recommendation
from stairways.tuning.study import StudyRecipe, finished_trials, open_study, run_study, safe_url
from tasks.retrying import IO_RETRIES

__all__ = [
    "apply_tuned_config",
    "close_study_run",
    "open_study_run",
    "publish_feature_ablation",
    "publish_tuning",
    "record_tuning",
    "run_trials",
]


@task(name="apply-tuned-config")
def apply_tuned_config(config: RetrainConfig) -> tuple[RetrainConfig, dict[str, Any]]:
    """The night's config with the study's recommendation applied (``ConfigError`` when there is none)."""
    tuned, provenance = apply_recommendation(config)
    get_run_logger().info(
        "training with the config study %r recommended (trial %s of %s; PBO %s, deflated Sharpe %s)",
        provenance["study"],
        provenance["trial"],
        provenance["trials"],
        provenance["pbo"],
        provenance["deflated_sharpe"],
    )
    return tuned, provenance


@task(name="record-tuning")
def record_tuning(handle: tracking.RunHandle, provenance: dict[str, Any]) -> None:
    """Tag the night with the study and trial its config came from."""
    tracking.set_tags(
        handle,
        {
            "tuning.study": str(provenance["study"]),
            "tuning.trial": str(provenance["trial"]),
            "tuning.trials": str(provenance["trials"]),
        },
    )
    tracking.log_json(handle, provenance, "config/tuning.json")


@task(name="open-study-run", **IO_RETRIES)
def open_study_run(recipe: StudyRecipe) -> tracking.RunHandle:
    """The study's MLflow parent run, tagged with the Prefect flow run that owns it."""
    handle = start_study_run(
        tracking_uri=tracking.resolve_tracking_uri(recipe.base.tracking.tracking_uri),
        tune=recipe.tune,
        kind=recipe.kind,
        storage=safe_url(recipe.storage_url),
        tags={
            "prefect.flow_run_id": str(flow_run.get_id() or "local"),
            "prefect.flow_run_name": str(flow_run.get_name() or "local"),
            "git_sha": tracking.git_sha(),
        },
        base=recipe.base.model_dump(mode="json"),
    )
    get_run_logger().info(
        "study %r (%s) in %s; MLflow run %s in %s",
        recipe.tune.study_name,
        recipe.kind,
        safe_url(recipe.storage_url),
        handle.run_id,
        handle.tracking_uri,
    )
    return handle


class _ToRunLogger(logging.Handler):
    """Forward the study's progress lines (one per finished trial) to the Prefect task run's log."""

    def __init__(self, logger: Any) -> None:
        super().__init__(level=logging.INFO)
        self.run_logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        self.run_logger.log(record.levelno, record.getMessage())


@task(name="run-trials")
def run_trials(recipe: StudyRecipe, workers: int) -> int:
    """Run the study's missing trials on ``workers`` processes; returns the finished trials.

    Trials run here log to this task's log; extra worker processes log to their own stderr.
    """
    source = logging.getLogger("stairways.tuning")
    handler = _ToRunLogger(get_run_logger())
    source.addHandler(handler)
    source.setLevel(logging.INFO)
    try:
        study = run_study(recipe, workers=workers)
    finally:
        source.removeHandler(handler)
    return len(finished_trials(study))


@task(name="publish-study")
def publish_tuning(handle: tracking.RunHandle, recipe: StudyRecipe) -> dict[str, Any]:
    """PBO, deflated Sharpe, recommendation, plots in MLflow; the summary as a Prefect markdown artifact."""
    study = open_study(recipe)
    analysis, markdown = publish_study(handle, study, recipe.tune)
    create_markdown_artifact(key=_artifact_key(recipe), markdown=markdown, description="Tuning study summary")
    logger = get_run_logger()
    if analysis.recommended:
        logger.info("study recommends trial %s (score %.4f)", analysis.best_trial, analysis.best_score)
    else:
        logger.warning("study recommends nothing: %s", "; ".join(analysis.reasons))
    return analysis.as_dict()


@task(name="publish-ablation")
def publish_feature_ablation(handle: tracking.RunHandle, recipe: StudyRecipe) -> list[dict[str, Any]]:
    """Each feature set's effect in MLflow and as a Prefect markdown artifact."""
    study = open_study(recipe)
    effects, markdown = publish_ablation(handle, study, recipe.tune)
    create_markdown_artifact(key=_artifact_key(recipe), markdown=markdown, description="Feature ablation")
    return effects


@task(name="close-study-run", **IO_RETRIES)
def close_study_run(handle: tracking.RunHandle, *, status: str) -> None:
    """Mark the study's parent run finished or failed."""
    tracking.end_run(handle, status=status)


def _artifact_key(recipe: StudyRecipe) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{recipe.kind}-{recipe.tune.study_name}".lower()).strip("-")
