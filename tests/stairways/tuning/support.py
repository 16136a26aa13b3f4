"""A tiny tuning recipe (seconds per trial) and in-memory studies with hand-made trials."""

from collections.abc import Sequence

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from stairways.config import RetrainConfig, load_config
from stairways.tuning.config import TuneConfig

TINY_BASE: RetrainConfig = load_config(
    overrides={
        "seed": 3,
        "data": {"synthetic": {"sessions": 16}},
        "window": {"selection_sessions": 2, "test_sessions": 2, "min_train_sessions": 3},
        "training": {"ppo": {"n_envs": 2, "n_steps": 64, "batch_size": 64}},
    }
)
TINY_TUNE = TuneConfig(
    trials=3,
    folds=2,
    fold_sessions=2,
    fold_selection_sessions=2,
    cycles=2,
    steps_per_cycle=256,
    pbo_partitions=2,
    startup_trials=2,
)


def study_of(columns: Sequence[Sequence[float]], *, pruned: int = 0, name: str = "hand-made") -> optuna.Study:
    """An in-memory study whose complete trial ``k`` was judged on ``columns[k]`` (its score: their mean, %)."""
    study = optuna.create_study(study_name=name, direction="maximize")
    for index, returns in enumerate(columns):
        study.add_trial(
            create_trial(
                state=TrialState.COMPLETE,
                value=100.0 * sum(returns) / len(returns),
                params={"x": float(index)},
                distributions={"x": FloatDistribution(0.0, 1000.0)},
                user_attrs={
                    "session_returns": list(returns),
                    "fold_scores": [100.0 * sum(returns) / len(returns)],
                    "overrides": {"training": {"ppo": {"gamma": 0.9 + index / 1000}}},
                },
            )
        )
    for _ in range(pruned):
        study.add_trial(
            create_trial(
                state=TrialState.PRUNED,
                params={"x": 999.0},
                distributions={"x": FloatDistribution(0.0, 1000.0)},
                intermediate_values={1: -1.0},
            )
        )
    return study
