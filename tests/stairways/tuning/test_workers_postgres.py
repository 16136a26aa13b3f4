"""Tuning workers on one PostgreSQL-backed Optuna study: exactly N trials, none lost, none run twice.

Each test gets a fresh database with a unique name on the local PostgreSQL (127.0.0.1:5432, user ``postgres``,
trust auth), dropped at the end; the module is skipped only when no PostgreSQL can be reached or started.
The trials use a tiny recipe (16 synthetic sessions, 2 folds x 2 cycles x 256 steps: seconds per trial).

* ``test_two_workers_finish_exactly_n_trials``: ``run_study(workers=2)`` with 5 trials and no pruner.
* ``test_resume_after_sigkill_mid_trial``: a worker process killed with SIGKILL mid-trial leaves a RUNNING
  trial whose heartbeat stops; once the heartbeat grace period has really passed (``_GRACE_SECONDS``, 60 s:
  the test waits for it, nothing is patched), resuming the study fails that trial, re-runs its parameters
  once and still ends with exactly N finished trials.
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from stairways.config import RetrainConfig
from stairways.tuning import StudyRecipe, run_study
from stairways.tuning import study as study_module
from stairways.tuning.study import open_study
from tests.ops.support import (
    ADMIN_DSN,
    POSTGRES_HOST,
    POSTGRES_PORT,
    POSTGRES_USER,
    postgres_admin,
    postgres_available,
)
from tests.stairways.tuning.support import TINY_BASE, TINY_TUNE

pytestmark = pytest.mark.slow


_LIVE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


@pytest.fixture
def storage_url() -> Iterator[str]:
    """A fresh database on the local PostgreSQL for one study; dropped afterwards."""
    pytest.importorskip("psycopg2", reason="psycopg2 is not installed (the PostgreSQL driver of the storage)")
    problem = postgres_available(ADMIN_DSN)
    if problem is not None:
        pytest.skip(f"no PostgreSQL for the tuning-worker test: {problem}")
    name = f"stairways_test_tune_{uuid.uuid4().hex[:10]}"
    postgres_admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"
    finally:
        # FORCE: the pooled connections of this process may still be open.
        postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _recipe(storage_url: str, trials: int, study_name: str) -> StudyRecipe:
    # No pruner: every trial completes, so the counts below are exact.
    tune = TINY_TUNE.model_copy(update={"study_name": study_name, "trials": trials, "pruner": "none"})
    base: RetrainConfig = TINY_BASE
    return StudyRecipe(base=base, tune=tune, storage_url=storage_url)


def _trials(recipe: StudyRecipe) -> list[FrozenTrial]:
    """Every trial of the study, read afresh from the storage, by number."""
    return _numbered(open_study(recipe))


def _numbered(study: optuna.Study) -> list[FrozenTrial]:
    return sorted(study.get_trials(deepcopy=False), key=lambda trial: trial.number)


def _pid(trial: FrozenTrial) -> int:
    """The process id in the trial's ``worker`` attribute (``host:pid:index``)."""
    return int(trial.user_attrs["worker"].rsplit(":", 2)[1])


def _params_key(trial: FrozenTrial) -> tuple:
    return tuple(sorted(trial.params.items()))


def _check_exactly_n(trials: list[FrozenTrial], n: int) -> list[FrozenTrial]:
    """The invariants of a finished study of ``n`` trials; returns its finished trials by number."""
    by_state = {state: [t for t in trials if t.state == state] for state in TrialState}
    finished = sorted(by_state[TrialState.COMPLETE] + by_state[TrialState.PRUNED], key=lambda t: t.number)
    states = {trial.number: trial.state.name for trial in trials}
    assert len(by_state[TrialState.COMPLETE]) == n, states  # pruner "none": all finished trials complete
    assert by_state[TrialState.PRUNED] == [], states
    assert by_state[TrialState.RUNNING] == [] and by_state[TrialState.WAITING] == [], states
    numbers = [trial.number for trial in trials]
    assert len(numbers) == len(set(numbers))
    for trial in finished:
        assert trial.params, f"trial {trial.number} has no parameters"
        assert len(trial.user_attrs["session_returns"]) == 2 * 2  # 2 folds x 2 judged sessions
        assert len(trial.user_attrs["fold_scores"]) == 2
        assert trial.user_attrs["wall_seconds"] > 0
        assert len(trial.intermediate_values) == 2 * 2  # 2 folds x 2 cycles, every cycle reported
    # the finished trials are the n lowest-numbered live ones; any overflow trial came after all of them
    live = sorted((trial for trial in trials if trial.state in _LIVE), key=lambda trial: trial.number)
    assert [t.number for t in finished] == [t.number for t in live[:n]] and len(live) == n
    for trial in trials:
        if trial.user_attrs.get("overflow"):
            assert trial.state == TrialState.FAIL and trial.params == {}
            assert trial.number > finished[-1].number
    assert not any(trial.user_attrs.get("overflow") for trial in finished)
    return finished


def test_two_workers_finish_exactly_n_trials(storage_url: str) -> None:
    n = 5
    recipe = _recipe(storage_url, n, "two-workers")
    run_study(recipe, workers=2)

    trials = _trials(recipe)
    finished = _check_exactly_n(trials, n)
    failed = [trial for trial in trials if trial.state == TrialState.FAIL]
    assert all(trial.user_attrs.get("overflow") for trial in failed), "a trial failed for another reason"
    # every trial that ran (not an overflow) has its own number and parameters: none ran twice
    ran = [trial for trial in trials if not trial.user_attrs.get("overflow")]
    assert len({trial.number for trial in ran}) == len(ran) == n
    assert len({_params_key(trial) for trial in ran}) == len(ran)
    # both worker processes ran trials ("host:pid:index")
    workers = {trial.user_attrs["worker"] for trial in finished}
    assert any(name.endswith(":0") for name in workers), workers
    assert any(name.endswith(":1") for name in workers), workers
    assert len({name.rsplit(":", 1)[0] for name in workers}) == 2, f"expected two processes: {workers}"
    # the workers recorded the study's fold plan
    assert "fold_plan" in open_study(recipe).user_attrs

    # running the finished study again runs nothing: same trials, same values
    before = [(t.number, t.state, t.value, t.params) for t in trials]
    run_study(recipe, workers=2)
    after = [(t.number, t.state, t.value, t.params) for t in _trials(recipe)]
    assert after == before


def _wait_for(
    condition: Callable[[], list[FrozenTrial]], timeout: float, what: str, process: subprocess.Popen
) -> list[FrozenTrial]:
    """Poll ``condition`` until it finds trials; fail when ``process`` exits first or after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        if process.poll() is not None:
            pytest.fail(f"the worker exited (code {process.returncode}) before {what}")
        time.sleep(0.25)
    pytest.fail(f"no {what} after {timeout:.0f} s")


def test_resume_after_sigkill_mid_trial(storage_url: str, tmp_path: Path) -> None:
    n = 3
    recipe = _recipe(storage_url, n, "sigkill")
    watched = open_study(recipe)  # created here, as run_study does before it starts workers
    recipe_file = tmp_path / "recipe.json"
    recipe_file.write_text(recipe.to_json())
    worker = subprocess.Popen(
        [sys.executable, "-m", "stairways.tuning.worker", "--recipe", str(recipe_file), "--worker", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # mid-trial: RUNNING with its parameters drawn and the worker recorded (training under way)
        running = _wait_for(
            lambda: [
                t for t in _numbered(watched) if t.state == TrialState.RUNNING and "worker" in t.user_attrs
            ],
            timeout=120,
            what="trial in training",
            process=worker,
        )
        time.sleep(1.0)
        os.kill(worker.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        assert worker.wait(timeout=30) == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    [victim] = running
    after_kill = {t.number: t for t in _trials(recipe)}
    assert after_kill[victim.number].state == TrialState.RUNNING, "the trial finished before the kill"
    assert _pid(after_kill[victim.number]) == worker.pid

    # the dead worker's heartbeat stops; its trial is stale once the real grace period has passed
    stale_after = killed_at + study_module._GRACE_SECONDS + 3  # the last heartbeat was before the kill
    time.sleep(max(0.0, stale_after - time.monotonic()))

    run_study(recipe, workers=2)

    trials = _trials(recipe)
    finished = _check_exactly_n(trials, n)
    by_number = {trial.number: trial for trial in trials}
    assert by_number[victim.number].state == TrialState.FAIL
    assert not by_number[victim.number].user_attrs.get("overflow")
    # the killed trial's parameters ran again exactly once, as a retry of it
    retries = [t for t in trials if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == victim.number]
    assert len(retries) == 1, [(t.number, t.state.name) for t in retries]
    [retry] = retries
    assert retry.state == TrialState.COMPLETE and retry in finished
    assert retry.params == by_number[victim.number].params
    assert _pid(retry) != worker.pid
    others = [t for t in trials if t.state == TrialState.FAIL and t.number != victim.number]
    assert all(t.user_attrs.get("overflow") for t in others), "a trial failed for another reason"
    # no parameters ran twice: apart from the retry, no finished trial repeats the killed trial's draw
    # (a resumed worker re-seeds its sampler with seed + worker, so its random startup trials repeat the
    # first session's draws unless the sampler's seed changes on a resume)
    repeats = {
        t.number: [o.number for o in finished if o.number != t.number and o.params == t.params]
        for t in finished
    }
    assert not any(repeats.values()), f"finished trials with the same parameters: {repeats}"
