"""Running a study: trials tracked as nested MLflow runs, same seed same trials, resume after an interruption."""

from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from core.errors import ConfigError
from stairways import tracking
from stairways.tuning import objective
from stairways.tuning.study import StudyRecipe, finished_trials, open_study, run_study, run_worker
from tests.stairways.tuning.support import TINY_BASE, TINY_TUNE


def _recipe(tmp_path: Path, name: str, **changes: object) -> StudyRecipe:
    return StudyRecipe(
        base=TINY_BASE,
        tune=TINY_TUNE.model_copy(update={"study_name": name, **changes}),
        storage_url=f"sqlite:///{tmp_path / 'optuna.db'}",
    )


def _trials(study: optuna.Study) -> list[tuple[dict, float | None, str]]:
    return [(trial.params, trial.value, trial.state.name) for trial in finished_trials(study)]


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> tuple[optuna.Study, tracking.RunHandle]:
    folder = tmp_path_factory.mktemp("tracked")
    parent = tracking.start_run(
        tracking_uri=f"sqlite:///{folder / 'mlflow.db'}",
        experiment_name="tuning-test",
        run_name="study",
        tags={},
    )
    recipe = StudyRecipe(
        base=TINY_BASE, tune=TINY_TUNE, storage_url=f"sqlite:///{folder / 'optuna.db'}", parent_run=parent
    )
    return run_study(recipe), parent


def test_a_tiny_study_finishes_its_trials_each_a_nested_mlflow_run(tracked) -> None:
    study, parent = tracked
    finished = finished_trials(study)
    assert len(finished) == TINY_TUNE.trials
    assert [trial.number for trial in finished] == list(range(TINY_TUNE.trials))
    for trial in finished:
        assert trial.user_attrs["wall_seconds"] > 0
        if trial.state == TrialState.COMPLETE:
            assert len(trial.user_attrs["session_returns"]) == TINY_TUNE.folds * TINY_TUNE.fold_sessions
            assert len(trial.user_attrs["fold_scores"]) == TINY_TUNE.folds
    assert "fold_plan" in study.user_attrs
    client = MlflowClient(tracking_uri=parent.tracking_uri)
    children = client.search_runs(
        [parent.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.run_id}'"
    )
    by_trial = {int(run.data.tags["optuna.trial"]): run for run in children}
    assert set(by_trial) == {trial.number for trial in finished}
    for trial in finished:
        run = by_trial[trial.number]
        assert run.data.tags["optuna.state"] == trial.state.name
        assert run.data.params["training.ppo.gamma"] == str(trial.params["training.ppo.gamma"])
        assert "wall_seconds" in run.data.metrics
        if trial.value is not None:
            assert run.data.metrics["score"] == pytest.approx(trial.value)


@pytest.mark.slow
def test_the_same_study_config_and_seed_give_the_same_trials(tracked, tmp_path: Path) -> None:
    study, _ = tracked
    again = run_study(_recipe(tmp_path, TINY_TUNE.study_name))
    assert _trials(again) == _trials(study)


@pytest.mark.slow
def test_an_interrupted_study_resumes_and_keeps_every_finished_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = _recipe(tmp_path, "interrupted")
    real = objective.score_config
    calls = {"count": 0}

    def interrupted_second_time(*args: object, **kwargs: object) -> objective.TrialScore:
        calls["count"] += 1
        if calls["count"] == 2:
            raise KeyboardInterrupt  # Ctrl+C in the middle of the second trial
        return real(*args, **kwargs)

    monkeypatch.setattr("stairways.tuning.study.score_config", interrupted_second_time)
    with pytest.raises(KeyboardInterrupt):
        run_study(recipe)
    study = open_study(recipe)
    states = [trial.state for trial in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL]
    first = study.trials[0]

    monkeypatch.setattr("stairways.tuning.study.score_config", real)
    resumed = run_study(recipe)
    finished = finished_trials(resumed)
    assert len(finished) == TINY_TUNE.trials
    kept = resumed.trials[0]
    assert (kept.params, kept.value, kept.datetime_complete) == (
        first.params,
        first.value,
        first.datetime_complete,
    )
    assert resumed.trials[1].state == TrialState.FAIL  # the interrupted one stays on record, not counted


def test_a_study_with_all_its_trials_live_runs_nothing_more(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, "full", trials=2)
    study = open_study(recipe)
    with pytest.warns(UserWarning, match="Heartbeat"):
        study.ask()
        study.ask()  # two trials running elsewhere
    assert run_worker(recipe) == 0
    assert len(study.trials) == 2


def test_a_study_belongs_to_one_recipe(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, "owned")
    open_study(recipe)
    other = StudyRecipe(
        base=TINY_BASE.model_copy(update={"seed": 4}), tune=recipe.tune, storage_url=recipe.storage_url
    )
    with pytest.raises(ConfigError, match="was run with another base config"):
        open_study(other)
    # More trials or another sampler seed continue the same study.
    open_study(
        StudyRecipe(
            base=TINY_BASE, tune=recipe.tune.model_copy(update={"trials": 9}), storage_url=recipe.storage_url
        )
    )


def test_an_unreachable_storage_is_one_clear_error(tmp_path: Path) -> None:
    recipe = StudyRecipe(
        base=TINY_BASE, tune=TINY_TUNE, storage_url="postgresql://nobody:secret@127.0.0.1:1/none"
    )
    with pytest.raises(ConfigError, match=r"cannot be opened") as caught:
        open_study(recipe)
    assert "secret" not in str(caught.value)
