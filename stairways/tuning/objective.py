"""A trial's score: the nightly recipe on every walk-forward fold, judged on the fold's last sessions.

:func:`prepare_tuning_data` loads the market once per worker, checks it (QC must pass, as for a night),
cuts the tuning history (:func:`stairways.tuning.folds.tuning_history`: nothing from the test window on)
and labels it. :func:`score_config` then runs, per fold, the night's stages on the fold's windows: features,
the causal signal, the training cycles (picked on the fold's selection window) and a deterministic
evaluation of the picked cycle on the fold's judged window. The trial's score is the mean over folds of the
judged mean session return (percent); its per-session returns, in time order over all folds, are the
columns of the study's overfitting matrix (:mod:`stairways.tuning.overfitting`).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from core.seeding import derive_seed
from market.normalize import NormalizedBars
from stairways.config import RetrainConfig
from stairways.pipeline import (
    features_for,
    labels_for,
    load_market,
    prepare_bars,
    quality_check,
    signal_for,
    training_data,
)
from stairways.tuning.config import TuneConfig
from stairways.tuning.folds import FoldPlan, plan_folds, tuning_history
from training.checkpoints import load_checkpoint
from training.cycles import run_cycles
from training.evaluation import evaluate_sessions
from training.outcome import CycleResult
from validation.qc import raise_for_qc

__all__ = ["FoldScore", "TrialScore", "TuningData", "prepare_tuning_data", "score_config", "trial_base"]

Report = Callable[[int, float], None]
"""Called after every training cycle with (step, the cycle's selection score); may raise to prune."""


@dataclass(frozen=True)
class TuningData:
    """What every trial of a worker shares: the history before the test window, its labels and folds."""

    history: NormalizedBars
    labels: pl.DataFrame
    folds: FoldPlan
    source: str


@dataclass(frozen=True)
class FoldScore:
    """One fold's outcome: the picked cycle's figures on the fold's judged window."""

    fold: int
    score: float
    """Mean judged session return, percent."""
    session_returns: tuple[float, ...]
    """Judged sessions' returns (fractions), in time order."""
    best_cycle: int
    cycles_run: int
    trades_per_day: float
    summary: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrialScore:
    """A trial's folds and its score (the folds' mean)."""

    folds: tuple[FoldScore, ...]

    @property
    def score(self) -> float:
        return math.fsum(fold.score for fold in self.folds) / len(self.folds)

    @property
    def session_returns(self) -> list[float]:
        return [value for fold in self.folds for value in fold.session_returns]


def trial_base(base: RetrainConfig, tune: TuneConfig) -> RetrainConfig:
    """``base`` with the study's trial budget (cycles, steps per cycle) and no progress bar."""
    training = base.training.model_copy(
        update={
            "cycles": tune.cycles or base.training.cycles,
            "steps_per_cycle": tune.steps_per_cycle or base.training.steps_per_cycle,
            "progress_bar": False,
        }
    )
    return base.model_copy(update={"training": training})


def prepare_tuning_data(base: RetrainConfig, tune: TuneConfig) -> TuningData:
    """Load and check the market, keep the history before the test window, label it and plan the folds.

    Raises ``DataQualityError`` when the data fails QC and ``ConfigError`` when the folds do not fit.
    """
    market = load_market(base)
    prepared = prepare_bars(market.bars, base)
    raise_for_qc(quality_check(prepared, base))
    history, night = tuning_history(prepared, base)
    folds = plan_folds(
        history,
        night,
        base,
        folds=tune.folds,
        fold_sessions=tune.fold_sessions,
        selection_sessions=tune.fold_selection_sessions,
    )
    return TuningData(history=history, labels=labels_for(history, base), folds=folds, source=market.source)


def score_config(
    config: RetrainConfig, data: TuningData, *, work_dir: Path, report: Report | None = None
) -> TrialScore:
    """Run the recipe of ``config`` on every fold; ``report`` hears each cycle's selection score."""
    features = features_for(data.history, config)
    cycles_per_fold = config.training.cycles
    scores: list[FoldScore] = []
    for fold in data.folds.folds:
        fold_features = features.filter(pl.col("ts") <= fold.end)
        fold_labels = data.labels.filter(pl.col("event_ts") <= fold.end)
        signal = signal_for(fold_features, fold_labels, fold.plan, config)
        windows = training_data(data.history, fold_features, signal, fold.plan, config)

        def on_cycle(result: CycleResult, offset: int = fold.index * cycles_per_fold) -> None:
            if report is not None:
                report(offset + result.cycle, float(result.evaluation["score"]))

        outcome = run_cycles(
            train=windows.train,
            selection=windows.selection,
            config=config.training,
            seed=derive_seed(config.seed, f"tuning-fold-{fold.index}"),
            output_dir=work_dir / f"fold-{fold.index}",
            on_cycle=on_cycle,
        )
        policy = load_checkpoint(outcome.best_checkpoint, market=windows.test)
        summary, returns = evaluate_sessions(policy, windows.test, config=config.training, sessions=None)
        scores.append(
            FoldScore(
                fold=fold.index,
                score=float(summary["score"]),
                session_returns=tuple(float(value) for value in returns),
                best_cycle=outcome.best_cycle,
                cycles_run=len(outcome.cycles),
                trades_per_day=float(summary.get("trades_per_day", math.nan)),
                summary={key: float(value) for key, value in summary.items() if _is_number(value)},
            )
        )
    return TrialScore(folds=tuple(scores))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
