"""Feature ablation: which feature sets matter, scored like tuning trials, with an interval per set.

The grid (:func:`ablation_variants`): ``all`` (every set on), ``no_<set>`` (that set off, the others on), and
with ``single_sets`` also ``only_<set>``. Every variant runs once per seed of ``tune.ablation_seeds`` as a
trial of an Optuna study (the grid is queued in the study up front, no pruning), on the same walk-forward folds as
tuning, so it resumes and runs on many workers the same way. A set's **effect** is the paired difference
``score(all) - score(no_<set>)`` per fold and seed (percent mean session return on the judged window): its
mean and a Student-t 95% interval over those pairs. A positive effect means the set helps.
"""

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState
from scipy import stats

from stairways.config import RetrainConfig
from stairways.tuning.space import FEATURE_SETS

__all__ = [
    "ALL_ON",
    "SetEffect",
    "ablation_effects",
    "ablation_plan",
    "ablation_variants",
    "grid_points",
    "variant_switches",
]

ALL_ON = "all"
_VARIANT = "ablation.variant"
_SEED = "seed"


def ablation_variants(*, single_sets: bool = False) -> list[str]:
    """``all``, ``no_<set>`` for every feature set, and ``only_<set>`` with ``single_sets``."""
    variants = [ALL_ON, *(f"no_{name}" for name in FEATURE_SETS)]
    if single_sets:
        variants += [f"only_{name}" for name in FEATURE_SETS]
    return variants


def variant_switches(variant: str) -> dict[str, bool]:
    """The ``features.<set>`` switches of a variant (``ValueError`` for an unknown one)."""
    if variant == ALL_ON:
        return {f"features.{name}": True for name in FEATURE_SETS}
    kind, _, name = variant.partition("_")
    if name not in FEATURE_SETS or kind not in ("no", "only"):
        msg = f"unknown ablation variant {variant!r}; variants are {ablation_variants(single_sets=True)}"
        raise ValueError(msg)
    return {f"features.{other}": (other != name) == (kind == "no") for other in FEATURE_SETS}


def grid_points(variants: Sequence[str], seeds: Sequence[int]) -> list[dict[str, Any]]:
    """The grid's trial parameters, variant by variant, seed by seed (queued in the study up front)."""
    return [{_VARIANT: variant, _SEED: seed} for variant in variants for seed in seeds]


def ablation_plan(variants: list[str], seeds: tuple[int, ...]) -> Any:
    """The trial plan of an ablation study: a grid variant and a seed per trial (the queued grid point)."""

    def plan(trial: optuna.Trial, base: RetrainConfig) -> dict[str, Any]:
        variant = trial.suggest_categorical(_VARIANT, variants)
        seed = trial.suggest_categorical(_SEED, list(seeds))
        return {**variant_switches(variant), _SEED: seed}

    return plan


@dataclass(frozen=True)
class SetEffect:
    """``score(all) - score(no_<set>)`` over paired folds and seeds: mean and 95% interval (percent)."""

    feature_set: str
    mean: float
    lower: float
    upper: float
    pairs: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fold_scores(study: optuna.Study) -> dict[tuple[str, int], list[float]]:
    scores: dict[tuple[str, int], list[float]] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        key = (str(trial.params[_VARIANT]), int(trial.params[_SEED]))
        scores[key] = [float(value) for value in trial.user_attrs.get("fold_scores", [])]
    return scores


def ablation_effects(study: optuna.Study) -> list[SetEffect]:
    """Each set's effect, from the complete ``all`` and ``no_<set>`` trials of the same seeds."""
    scores = _fold_scores(study)
    effects: list[SetEffect] = []
    for name in FEATURE_SETS:
        differences: list[float] = []
        for (variant, seed), folds in scores.items():
            if variant != ALL_ON or (f"no_{name}", seed) not in scores:
                continue
            ablated = scores[(f"no_{name}", seed)]
            differences += [full - off for full, off in zip(folds, ablated, strict=True)]
        effects.append(_effect(name, differences))
    return effects


def _effect(name: str, differences: list[float]) -> SetEffect:
    values = np.asarray(differences, dtype=np.float64)
    if values.size == 0:
        return SetEffect(name, math.nan, math.nan, math.nan, 0)
    mean = float(values.mean())
    if values.size < 2:
        return SetEffect(name, mean, math.nan, math.nan, 1)
    half = float(stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / math.sqrt(values.size))
    return SetEffect(name, mean, mean - half, mean + half, int(values.size))
