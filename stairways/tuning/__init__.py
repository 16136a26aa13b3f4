"""Tuning: Optuna studies over the nightly recipe, scored on walk-forward folds before the test window.

:mod:`~stairways.tuning.space` declares what a study may change, :mod:`~stairways.tuning.folds` cuts the
folds, :mod:`~stairways.tuning.objective` scores a config, :mod:`~stairways.tuning.study` runs workers on one
storage, :mod:`~stairways.tuning.overfitting` measures PBO and the deflated Sharpe ratio and decides the
recommendation, :mod:`~stairways.tuning.ablation` scores feature sets, :mod:`~stairways.tuning.report` draws.
"""

from stairways.tuning.config import TuneConfig, load_tune_config, resolve_storage
from stairways.tuning.overfitting import StudyAnalysis, analyse_study
from stairways.tuning.space import DEFAULT_SPACE, SearchSpace
from stairways.tuning.study import StudyRecipe, run_study

__all__ = [
    "DEFAULT_SPACE",
    "SearchSpace",
    "StudyAnalysis",
    "StudyRecipe",
    "TuneConfig",
    "analyse_study",
    "load_tune_config",
    "resolve_storage",
    "run_study",
]
