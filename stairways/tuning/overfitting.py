"""How likely the study's choice is overfit, and the recommendation it may make.

For the finished study:

* **PBO** (probability of backtest overfitting, CSCV, :func:`validation.pbo.pbo`) over the sessions x
  trials matrix of judged session returns of the complete trials (every complete trial is judged on the same
  fold sessions, in time order), with ``tune.pbo_partitions`` partitions and the Sharpe ratio as metric.
* **Deflated Sharpe ratio** (:func:`validation.statistics.deflated_sharpe_ratio`) of the best trial's judged
  session returns, given the number of trials tried (complete and pruned) and the variance of the complete
  trials' Sharpe ratios.

A config is **recommended** only when PBO <= ``tune.max_pbo`` and the deflated Sharpe probability >=
``tune.min_deflated_sharpe``; otherwise :attr:`StudyAnalysis.reasons` says why nothing is. The
recommendation (the best trial's overrides, with its study and trial) is stored in the study itself
(user attribute ``recommendation``), where a night that opts in reads it
(:func:`stairways.tuning.recommendation.recommended_config`).
"""

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import optuna
import yaml
from optuna.trial import TrialState

from stairways.assessment import session_sharpe
from stairways.tuning.config import TuneConfig
from validation.pbo import pbo
from validation.statistics import deflated_sharpe_ratio, sharpe_variance

__all__ = ["StudyAnalysis", "analyse_study", "recommendation_yaml", "returns_matrix"]


@dataclass(frozen=True)
class StudyAnalysis:
    """The study's outcome: counts, the best trial, PBO, deflated Sharpe and the recommendation (or why not)."""

    study_name: str
    trials_complete: int
    trials_pruned: int
    trials_failed: int
    best_trial: int | None
    best_score: float | None
    best_overrides: dict[str, Any] | None
    pbo: dict[str, Any] | None
    deflated_sharpe: dict[str, Any] | None
    recommended: bool
    reasons: tuple[str, ...]
    top_trials: list[dict[str, Any]] = field(default_factory=list)
    trial_sharpes: tuple[float, ...] = ()
    """Per-session Sharpe ratios of the complete trials (finite ones): what a night's gate deflates by."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def recommendation(self) -> dict[str, Any] | None:
        """What a night reads: the overrides and where they came from (None when nothing is recommended)."""
        if not self.recommended or self.best_overrides is None:
            return None
        return {
            "study": self.study_name,
            "trial": self.best_trial,
            "score": self.best_score,
            "trials": self.trials_complete + self.trials_pruned,
            "pbo": (self.pbo or {}).get("pbo"),
            "deflated_sharpe": (self.deflated_sharpe or {}).get("probability"),
            "recommended_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "overrides": self.best_overrides,
            "trial_sharpes": list(self.trial_sharpes),
        }


def returns_matrix(trials: list[optuna.trial.FrozenTrial]) -> np.ndarray:
    """Sessions x trials judged returns of complete trials (``ValueError`` if their sessions differ)."""
    columns = [np.asarray(trial.user_attrs["session_returns"], dtype=np.float64) for trial in trials]
    lengths = {column.size for column in columns}
    if len(lengths) != 1:
        msg = (
            f"trials were judged on different numbers of sessions {sorted(lengths)}; one study, one fold plan"
        )
        raise ValueError(msg)
    return np.column_stack(columns)


def analyse_study(study: optuna.Study, tune: TuneConfig, *, top: int = 5) -> StudyAnalysis:
    """PBO, deflated Sharpe and the recommendation for ``study`` under ``tune``'s thresholds."""
    trials = study.get_trials(deepcopy=False)
    real = [trial for trial in trials if not trial.user_attrs.get("overflow")]
    complete = [t for t in real if t.state == TrialState.COMPLETE and "session_returns" in t.user_attrs]
    pruned = [t for t in real if t.state == TrialState.PRUNED]
    failed = [t for t in real if t.state == TrialState.FAIL]
    reasons: list[str] = []
    ranked = sorted(complete, key=lambda t: (-float(t.value or -math.inf), t.number))
    best = ranked[0] if ranked else None
    pbo_record: dict[str, Any] | None = None
    dsr_record: dict[str, Any] | None = None
    if len(complete) < 2:
        reasons.append(f"{len(complete)} complete trial(s): PBO needs at least 2")
    else:
        matrix = returns_matrix(complete)
        try:
            result = pbo(matrix, n_partitions=tune.pbo_partitions)
            pbo_record = {
                "pbo": result.pbo,
                "probability_of_loss": result.probability_of_loss,
                "degradation_slope": result.degradation_slope,
                "partitions": result.n_partitions,
                "combinations": result.n_combinations,
                "sessions": int(matrix.shape[0]),
                "trials": int(matrix.shape[1]),
            }
        except ValueError as error:
            reasons.append(f"PBO cannot be computed: {error}")
    sharpes = [
        s for s in (session_sharpe(t.user_attrs["session_returns"]) for t in complete) if math.isfinite(s)
    ]
    if best is not None:
        returns = np.asarray(best.user_attrs["session_returns"], dtype=np.float64)
        try:
            dsr = deflated_sharpe_ratio(
                returns,
                n_trials=len(complete) + len(pruned),
                trial_sharpe_variance=sharpe_variance(sharpes or [0.0]),
            )
            dsr_record = dsr.to_dict()
        except ValueError as error:
            reasons.append(f"deflated Sharpe cannot be computed: {error}")
    if pbo_record is not None and pbo_record["pbo"] > tune.max_pbo:
        reasons.append(
            f"PBO {pbo_record['pbo']:.2f} > max_pbo {tune.max_pbo:.2f}: the best trial is likely overfit"
        )
    if dsr_record is not None and not dsr_record["probability"] >= tune.min_deflated_sharpe:
        reasons.append(
            f"deflated Sharpe {dsr_record['probability']:.3f} < min_deflated_sharpe {tune.min_deflated_sharpe}: "
            f"the best of {dsr_record['n_trials']} trials is not distinguishable from luck"
        )
    recommended = best is not None and pbo_record is not None and dsr_record is not None and not reasons
    return StudyAnalysis(
        study_name=study.study_name,
        trials_complete=len(complete),
        trials_pruned=len(pruned),
        trials_failed=len(failed),
        best_trial=None if best is None else best.number,
        best_score=None if best is None else float(best.value),  # type: ignore[arg-type]
        best_overrides=None if best is None else best.user_attrs.get("overrides"),
        pbo=pbo_record,
        deflated_sharpe=dsr_record,
        recommended=recommended,
        reasons=tuple(reasons),
        top_trials=[
            {
                "trial": t.number,
                "score": t.value,
                "fold_scores": t.user_attrs.get("fold_scores"),
                "params": t.params,
                "wall_seconds": t.user_attrs.get("wall_seconds"),
            }
            for t in ranked[:top]
        ],
        trial_sharpes=tuple(sharpes),
    )


def recommendation_yaml(analysis: StudyAnalysis) -> str | None:
    """The recommended config as a YAML file of overrides (``stairways run --config``), or None."""
    recommendation = analysis.recommendation()
    if recommendation is None:
        return None
    header = (
        f"# Recommended by study {analysis.study_name!r}, trial {analysis.best_trial} of "
        f"{recommendation['trials']} (score {analysis.best_score:.4f}, PBO {recommendation['pbo']:.2f}, "
        f"deflated Sharpe {recommendation['deflated_sharpe']:.3f}).\n"
    )
    return header + yaml.safe_dump(recommendation["overrides"], sort_keys=False)
