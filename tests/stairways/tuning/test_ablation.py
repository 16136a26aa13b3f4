"""Feature ablation: the grid, the switches of each variant and each set's effect with its interval."""

import math

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial
from scipy import stats

from stairways.config import RetrainConfig
from stairways.tuning.ablation import (
    ALL_ON,
    ablation_effects,
    ablation_variants,
    grid_points,
    variant_switches,
)
from stairways.tuning.space import FEATURE_SETS, config_for


def test_the_grid_is_all_on_then_each_set_off_and_optionally_each_set_alone() -> None:
    assert ablation_variants() == [ALL_ON, *(f"no_{name}" for name in FEATURE_SETS)]
    assert ablation_variants(single_sets=True)[-len(FEATURE_SETS) :] == [
        f"only_{name}" for name in FEATURE_SETS
    ]
    assert len(grid_points(ablation_variants(), (7, 8))) == 2 * (1 + len(FEATURE_SETS))


def test_each_variant_switches_exactly_its_sets_and_gives_a_valid_config() -> None:
    assert all(variant_switches(ALL_ON).values())
    off = variant_switches("no_cross_asset")
    assert [path for path, on in off.items() if not on] == ["features.cross_asset"]
    alone = variant_switches("only_trend")
    assert [path for path, on in alone.items() if on] == ["features.trend"]
    for variant in ablation_variants(single_sets=True):
        config = config_for(RetrainConfig(), variant_switches(variant))
        assert "signal" in config.observation_features
    with pytest.raises(ValueError, match="unknown ablation variant"):
        variant_switches("no_sentiment")


def _study(scores: dict[tuple[str, int], list[float]]) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    distributions = {
        "ablation.variant": CategoricalDistribution(ablation_variants()),
        "seed": CategoricalDistribution([7, 8]),
    }
    for (variant, seed), folds in scores.items():
        study.add_trial(
            create_trial(
                state=TrialState.COMPLETE,
                value=sum(folds) / len(folds),
                params={"ablation.variant": variant, "seed": seed},
                distributions=distributions,
                user_attrs={"fold_scores": folds},
            )
        )
    return study


def test_a_sets_effect_is_the_paired_difference_over_folds_and_seeds_with_a_t_interval() -> None:
    scores = {
        (ALL_ON, 7): [0.30, 0.10],
        (ALL_ON, 8): [0.20, 0.40],
        ("no_price", 7): [0.10, 0.05],
        ("no_price", 8): [0.15, 0.10],
        ("no_time", 7): [0.30, 0.10],  # one seed only: one fold pair each
    }
    effects = {effect.feature_set: effect for effect in ablation_effects(_study(scores))}
    differences = [0.20, 0.05, 0.05, 0.30]
    mean = sum(differences) / 4
    spread = math.sqrt(sum((value - mean) ** 2 for value in differences) / 3)
    half = stats.t.ppf(0.975, 3) * spread / 2
    price = effects["price"]
    assert price.pairs == 4
    assert price.mean == pytest.approx(mean)
    assert (price.lower, price.upper) == (pytest.approx(mean - half), pytest.approx(mean + half))
    time = effects["time"]
    assert time.pairs == 2 and time.mean == pytest.approx(0.0)
    assert effects["trend"].pairs == 0 and math.isnan(effects["trend"].mean)  # never ablated
