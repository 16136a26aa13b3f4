"""Record a finished study or ablation in its MLflow parent run (Prefect-free; the flow's tasks call these).

``study/analysis.json`` (PBO, deflated Sharpe, top trials, reasons), ``study/recommended.yaml`` when a
config is recommended, ``study/fold_plan.json``, ``study/report.md`` and the plots under ``study/plots/``;
the parent run's metrics ``study.pbo``, ``study.deflated_sharpe``, ``study.best_score`` and the trial counts,
and the tag ``study.recommended``. An ablation logs ``ablation/effects.json``, ``ablation/report.md`` and
``ablation/effects.png``.
"""

import tempfile
from pathlib import Path
from typing import Any

import optuna

from stairways import tracking
from stairways.tuning.ablation import ablation_effects
from stairways.tuning.config import TuneConfig
from stairways.tuning.overfitting import StudyAnalysis, analyse_study, recommendation_yaml
from stairways.tuning.recommendation import store_recommendation
from stairways.tuning.report import ablation_chart, ablation_markdown, study_markdown, study_plots

__all__ = ["publish_ablation", "publish_study", "start_study_run"]


def start_study_run(
    *,
    tracking_uri: str,
    tune: TuneConfig,
    kind: str,
    storage: str,
    tags: dict[str, str],
    base: dict[str, Any],
) -> tracking.RunHandle:
    """The study's MLflow parent run (trials are nested under it), with its settings as artifacts."""
    handle = tracking.start_run(
        tracking_uri=tracking_uri,
        experiment_name=tune.experiment_name,
        run_name=f"{kind}-{tune.study_name}",
        tags={"optuna.study": tune.study_name, "optuna.storage": storage, "stairways.kind": kind, **tags},
    )
    tracking.log_json(handle, tune.model_dump(mode="json"), "study/tune_config.json")
    tracking.log_json(handle, base, "study/base_config.json")
    tracking.log_params(
        handle,
        {
            "trials": tune.trials,
            "folds": tune.folds,
            "fold_sessions": tune.fold_sessions,
            "sampler": tune.sampler,
            "pruner": tune.pruner,
            "seed": tune.seed,
            "max_pbo": tune.max_pbo,
            "min_deflated_sharpe": tune.min_deflated_sharpe,
        },
    )
    return handle


def publish_study(
    handle: tracking.RunHandle, study: optuna.Study, tune: TuneConfig
) -> tuple[StudyAnalysis, str]:
    """Analyse the study, store its recommendation (or its absence) and log everything; returns the markdown."""
    analysis = analyse_study(study, tune)
    store_recommendation(study, analysis)
    fold_plan = study.user_attrs.get("fold_plan")
    markdown = study_markdown(analysis, fold_plan=fold_plan)
    tracking.log_json(handle, analysis.as_dict(), "study/analysis.json")
    tracking.log_text(handle, markdown, "study/report.md")
    if fold_plan is not None:
        tracking.log_json(handle, fold_plan, "study/fold_plan.json")
    recommended = recommendation_yaml(analysis)
    if recommended is not None:
        tracking.log_text(handle, recommended, "study/recommended.yaml")
    metrics = {
        "study.trials_complete": analysis.trials_complete,
        "study.trials_pruned": analysis.trials_pruned,
        "study.trials_failed": analysis.trials_failed,
    }
    if analysis.best_score is not None:
        metrics["study.best_score"] = analysis.best_score
    if analysis.pbo is not None:
        metrics["study.pbo"] = analysis.pbo["pbo"]
    if analysis.deflated_sharpe is not None:
        metrics["study.deflated_sharpe"] = analysis.deflated_sharpe["probability"]
    tracking.log_metrics(handle, metrics)
    tracking.set_tags(handle, {"study.recommended": str(analysis.recommended).lower()})
    with tempfile.TemporaryDirectory() as folder:
        for path in study_plots(study, Path(folder)):
            tracking.log_file(handle, path, "study/plots")
    return analysis, markdown


def publish_ablation(
    handle: tracking.RunHandle, study: optuna.Study, tune: TuneConfig
) -> tuple[list[dict[str, Any]], str]:
    """Each feature set's effect as JSON, a markdown table and a bar chart; returns (effects, markdown)."""
    effects = ablation_effects(study)
    markdown = ablation_markdown(effects, seeds=tune.ablation_seeds, folds=tune.folds)
    tracking.log_json(handle, [effect.as_dict() for effect in effects], "ablation/effects.json")
    tracking.log_text(handle, markdown, "ablation/report.md")
    with tempfile.TemporaryDirectory() as folder:
        tracking.log_file(handle, ablation_chart(effects, Path(folder) / "effects.png"), "ablation")
    return [effect.as_dict() for effect in effects], markdown
