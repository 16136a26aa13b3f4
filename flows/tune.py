"""Tuning flows: an Optuna study over the nightly recipe (``tune``) and the feature-set ablation (``ablate``).

Both score configs on walk-forward folds cut before the night's test window (:mod:`stairways.tuning`), keep
the study in an Optuna RDB storage (resumed when it exists: a crashed or cancelled run loses no finished
trial), track it as one MLflow parent run with a nested run per trial, and publish a markdown summary as a
Prefect artifact. More Prefect workers running the same deployment share the study through its storage.
"""

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from prefect import flow

from stairways import tracking
from stairways.config import RetrainConfig
from stairways.tuning.ablation import ablation_variants
from stairways.tuning.config import TuneConfig, resolve_storage
from stairways.tuning.study import StudyRecipe, safe_url
from tasks.tuning import (
    close_study_run,
    open_study_run,
    publish_feature_ablation,
    publish_tuning,
    run_trials,
)

__all__ = ["ablate", "tune"]


def _recipe(
    config: RetrainConfig, tune_config: TuneConfig, *, kind: str, variants: tuple[str, ...] = ()
) -> StudyRecipe:
    uri = tracking.resolve_tracking_uri(config.tracking.tracking_uri)
    return StudyRecipe(
        base=config,
        tune=tune_config,
        storage_url=resolve_storage(tune_config.storage, uri),
        kind=kind,
        variants=variants,
    )


def _study_run(
    recipe: StudyRecipe, workers: int, publish: Callable[..., Any]
) -> tuple[StudyRecipe, int, Any]:
    """Open the study's MLflow run, run the missing trials, publish; the run ends FAILED if anything raises."""
    handle = open_study_run(recipe)
    recipe = replace(recipe, parent_run=handle)
    try:
        finished = run_trials(recipe, workers)
        published = publish(handle, recipe)
    except BaseException:
        close_study_run(handle, status="FAILED")
        raise
    close_study_run(handle, status="FINISHED")
    return recipe, finished, published


@flow(name="tune", log_prints=True)
def tune(
    tune_config: TuneConfig = TuneConfig(),  # noqa: B008 - frozen default
    config: RetrainConfig = RetrainConfig(),  # noqa: B008 - frozen default
    workers: int = 1,
) -> dict[str, Any]:
    """Run the study to ``tune_config.trials`` trials, then measure PBO and the deflated Sharpe ratio and
    recommend a config only when both pass."""
    recipe, finished, analysis = _study_run(
        _recipe(config, tune_config, kind="tune"), workers, publish_tuning
    )
    return {
        "mlflow_run_id": recipe.parent_run.run_id,  # type: ignore[union-attr]
        "storage": safe_url(recipe.storage_url),
        "finished_trials": finished,
        **analysis,
    }


@flow(name="ablate", log_prints=True)
def ablate(
    tune_config: TuneConfig = TuneConfig(study_name="stairways-ablation"),  # noqa: B008 - frozen default
    config: RetrainConfig = RetrainConfig(),  # noqa: B008 - frozen default
    workers: int = 1,
    single_sets: bool = False,
) -> dict[str, Any]:
    """Every feature set off in turn (and alone, with ``single_sets``), once per ablation seed; each set's
    effect with a 95% interval over folds and seeds."""
    variants = tuple(ablation_variants(single_sets=single_sets))
    grid = tune_config.model_copy(update={"trials": len(variants) * len(tune_config.ablation_seeds)})
    recipe = _recipe(config, grid, kind="ablate", variants=variants)
    recipe, finished, effects = _study_run(recipe, workers, publish_feature_ablation)
    return {
        "mlflow_run_id": recipe.parent_run.run_id,  # type: ignore[union-attr]
        "storage": safe_url(recipe.storage_url),
        "finished_trials": finished,
        "effects": effects,
    }
