"""A night that opts in (``tuning.use_recommended``) trains with the study's recommended config.

:func:`store_recommendation` writes the analysis's recommendation into the study (or clears it when the
latest analysis recommends nothing, so a stale recommendation never outlives a failed re-check);
:func:`apply_recommendation` reads it and returns the night's config with the overrides applied, plus the
provenance the night records (study, trial, PBO, deflated Sharpe) and the study's trial Sharpe ratios the
gate counts among the candidates compared.
"""

from typing import Any

import optuna

from core.errors import ConfigError
from stairways import tracking
from stairways.config import RetrainConfig, load_config, merge_overrides
from stairways.tuning.config import resolve_storage
from stairways.tuning.overfitting import StudyAnalysis
from stairways.tuning.study import storage_for

__all__ = ["RECOMMENDATION_ATTR", "apply_recommendation", "store_recommendation"]

RECOMMENDATION_ATTR = "recommendation"


def store_recommendation(study: optuna.Study, analysis: StudyAnalysis) -> None:
    """Record the recommendation (with the trials' Sharpe ratios) in the study, or an explicit none."""
    recommendation = analysis.recommendation()
    if recommendation is None:
        study.set_user_attr(RECOMMENDATION_ATTR, {"recommended": False, "reasons": list(analysis.reasons)})
        return
    study.set_user_attr(RECOMMENDATION_ATTR, {"recommended": True, **recommendation})


def apply_recommendation(config: RetrainConfig) -> tuple[RetrainConfig, dict[str, Any]]:
    """The night's config with the study's recommended overrides, and their provenance.

    Raises ``ConfigError`` when the study does not exist, recommends nothing, or its overrides no longer
    validate against this config.
    """
    use = config.tuning
    url = resolve_storage(use.storage, tracking.resolve_tracking_uri(config.tracking.tracking_uri))
    try:
        study = optuna.load_study(study_name=use.study_name, storage=storage_for(url))
    except KeyError:
        msg = f"tuning.use_recommended: no study {use.study_name!r} in the Optuna storage; run `stairways tune` first"
        raise ConfigError(msg) from None
    recorded = study.user_attrs.get(RECOMMENDATION_ATTR)
    if not recorded or not recorded.get("recommended"):
        why = "; ".join((recorded or {}).get("reasons", ["the study was never analysed"]))
        msg = f"tuning.use_recommended: study {use.study_name!r} recommends no config ({why})"
        raise ConfigError(msg)
    merged = merge_overrides(config.model_dump(mode="json"), recorded["overrides"])
    try:
        tuned = load_config(overrides=merged)
    except ConfigError as error:
        msg = f"tuning.use_recommended: the recommendation of study {use.study_name!r} does not fit: {error}"
        raise ConfigError(msg) from None
    provenance = {
        key: recorded.get(key) for key in ("study", "trial", "trials", "score", "pbo", "deflated_sharpe")
    }
    provenance["trial_sharpes"] = list(recorded.get("trial_sharpes", []))
    return tuned, provenance
