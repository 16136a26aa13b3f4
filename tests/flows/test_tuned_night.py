"""A night that opts in to the tuning study's recommendation trains with it, says so, and deflates by it."""

from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from core.errors import ConfigError
from flows.retrain import nightly_retrain
from stairways.config import RetrainConfig
from stairways.tuning.config import TuneConfig
from stairways.tuning.overfitting import analyse_study
from stairways.tuning.recommendation import store_recommendation
from tests.stairways.tuning.overfitting_cases import DOMINANT, FLIPPING
from tests.stairways.tuning.support import study_of

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


def _night(tmp_path: Path, columns: list[list[float]]) -> RetrainConfig:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    stored = optuna.create_study(study_name="tuned", storage=storage)
    store_recommendation(stored, analyse_study(study_of(columns, name="tuned"), TuneConfig(pbo_partitions=2)))
    return RetrainConfig.model_validate(
        {
            "seed": 3,
            "data": {"synthetic": {"sessions": 8}},
            "window": {"selection_sessions": 2, "test_sessions": 2, "min_train_sessions": 3},
            "tracking": {"experiment_name": f"test-{tmp_path.name}"},
            "tuning": {"use_recommended": True, "study_name": "tuned", "storage": storage},
        }
    )


def test_a_tuned_night_records_its_study_and_counts_the_trials(tmp_path: Path) -> None:
    summary = nightly_retrain(_night(tmp_path, DOMINANT))
    assert summary["tuning"] == {"study": "tuned", "trial": 0, "trials": 2}
    run = MlflowClient().get_run(summary["mlflow_run_id"])
    assert run.data.tags["tuning.study"] == "tuned" and run.data.tags["tuning.trial"] == "0"
    assert run.data.params["training.ppo.gamma"] == "0.9"  # the recommended override, in the logged config
    kept_cycles = sum(1 for cycle in summary["cycles"] if not cycle["rolled_back"])
    assert run.data.metrics["gate.candidates_compared"] == kept_cycles + 2


def test_a_night_whose_study_recommends_nothing_stops_before_it_trains(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="recommends no config"):
        nightly_retrain(_night(tmp_path, FLIPPING))
