"""stairways/promotion.py: verified before visible, compare-and-set under a lock, consistent after any crash."""

import multiprocessing
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from core.errors import GateRejected, RegistryError, ReplayMismatch
from stairways import promotion
from stairways.promotion import (
    LOCK_ENV,
    lock_target,
    promote_verified,
    promotion_lock,
    recover,
)
from tests.stairways.registry_support import NAME, add_versions, aliases, client_of, state


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs (no except clause catches a BaseException)."""


def matching(model_uri: str) -> tuple[list[float], str | None]:
    return [1.0, 2.0], None


def promote(
    store: str, version: str, expected: str | None, replay: Callable = matching
) -> promotion.PromotionOutcome:
    return promote_verified(
        tracking_uri=store,
        model_name=NAME,
        version=version,
        expected_champion=expected,
        reason="r",
        replay=replay,
    )


@pytest.fixture
def with_champion(store: str) -> list[str]:
    """Version 1 is champion (promoted through the real path); versions 2 and 3 passed the gate."""
    versions = add_versions(store, 3)
    promote(store, "1", None)
    assert aliases(store) == {"champion": "1", "previous-champion": None}
    return versions


# ------------------------------------------------------------------------------------ verified before visible


def test_the_version_is_replayed_before_any_alias_moves(store: str, with_champion: list[str]) -> None:
    seen = []

    def replay(model_uri: str) -> tuple[list[float], str | None]:
        seen.append((model_uri, aliases(store), state(store, "2")))
        return [0.5], None

    outcome = promote(store, "2", "1", replay)
    assert seen == [("models:/agent/2", {"champion": "1", "previous-champion": None}, "verifying")]
    assert outcome.promoted and outcome.champion == "2" and outcome.replayed == (0.5,)
    assert aliases(store) == {"champion": "2", "previous-champion": "1"}
    assert state(store, "2") == "promoted"


def test_a_replay_mismatch_moves_no_alias(store: str, with_champion: list[str]) -> None:
    with pytest.raises(ReplayMismatch, match="episode 0 differs"):
        promote(store, "2", "1", lambda uri: ([9.0], "episode 0 differs"))
    assert aliases(store) == {"champion": "1", "previous-champion": None}
    assert state(store, "2") == "replay_failed"


def test_a_replay_that_crashes_moves_no_alias_and_is_recorded(store: str, with_champion: list[str]) -> None:
    def broken(model_uri: str) -> tuple[list[float], str | None]:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        promote(store, "2", "1", broken)
    assert aliases(store) == {"champion": "1", "previous-champion": None}
    assert state(store, "2") == "replay_failed"
    assert "disk full" in client_of(store).get_model_version(NAME, "2").tags["promotion.note"]


def test_only_a_passing_version_is_promoted(store: str) -> None:
    add_versions(store, 1, verdict="failed")
    with pytest.raises(GateRejected, match="did not pass the gate"):
        promote(store, "1", None)
    with pytest.raises(RegistryError, match="no version '5'"):
        promote(store, "5", None)
    assert aliases(store) == {"champion": None, "previous-champion": None}


# -------------------------------------------------------------------------------------- two nights at once


@pytest.mark.parametrize("first", ["2", "3"])
def test_two_nights_against_the_same_champion_promote_one_and_say_so(
    store: str, with_champion: list[str], first: str
) -> None:
    second = "3" if first == "2" else "2"
    winner = promote(store, first, "1")
    loser = promote(store, second, "1")
    assert winner.promoted and not loser.promoted
    assert loser.champion == first
    assert f"the champion moved from 1 to {first}" in loser.reason
    assert aliases(store) == {"champion": first, "previous-champion": "1"}
    assert state(store, second) == "superseded"


def _night_in_process(store: str, version: str, barrier: multiprocessing.Barrier, results: dict) -> None:
    barrier.wait()

    def slow(model_uri: str) -> tuple[list[float], str | None]:
        time.sleep(0.5)
        return [1.0], None

    outcome = promote(store, version, "1", slow)
    results[version] = (outcome.promoted, outcome.champion)


def test_two_night_processes_at_once_leave_one_consistent_champion(
    store: str, with_champion: list[str]
) -> None:
    context = multiprocessing.get_context("fork")
    with context.Manager() as manager:
        results = manager.dict()
        barrier = context.Barrier(2)
        nights = [
            context.Process(target=_night_in_process, args=(store, v, barrier, results)) for v in ("2", "3")
        ]
        for night in nights:
            night.start()
        for night in nights:
            night.join(timeout=120)
        outcomes = dict(results)
    assert sorted(promoted for promoted, _ in outcomes.values()) == [False, True]
    winner = next(version for version, (promoted, _) in outcomes.items() if promoted)
    assert all(champion == winner for _, champion in outcomes.values())
    assert aliases(store) == {"champion": winner, "previous-champion": "1"}


# ------------------------------------------------------------------------------------ a crash at every step


def _writes() -> tuple[str, ...]:
    return ("set_model_version_tag", "set_registered_model_alias", "delete_registered_model_alias")


@pytest.fixture
def crash_after(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int], None]]:
    """``crash_after(k)``: the k-th registry write of this process (1-based) dies before it happens."""
    count = {"writes": 0, "limit": None}
    for name in _writes():
        original = getattr(MlflowClient, name)

        def counted(
            self: MlflowClient, *args: object, _original: Callable = original, **kwargs: object
        ) -> object:
            count["writes"] += 1
            if count["limit"] is not None and count["writes"] >= count["limit"]:
                raise Crash
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(MlflowClient, name, counted)

    def arm(limit: int) -> None:
        count["writes"], count["limit"] = 0, limit

    yield arm


def _promotion_writes(store: str) -> int:
    """How many registry writes a full promotion of a fresh version makes (measured, not assumed)."""
    counter = {"n": 0}
    client = MlflowClient
    originals = {name: getattr(client, name) for name in _writes()}

    def wrap(name: str) -> Callable:
        def counted(self: MlflowClient, *args: object, **kwargs: object) -> object:
            counter["n"] += 1
            return originals[name](self, *args, **kwargs)

        return counted

    try:
        for name in _writes():
            setattr(client, name, wrap(name))
        promote(store, "3", "1")
    finally:
        for name, original in originals.items():
            setattr(client, name, original)
    return counter["n"]


def test_a_crash_at_every_step_leaves_one_of_the_two_consistent_states(
    tmp_path: Path, crash_after: Callable[[int], None]
) -> None:
    template = tmp_path / "template.db"
    add_versions(f"sqlite:///{template}", 3)
    promote(f"sqlite:///{template}", "1", None)
    shutil.copy(template, tmp_path / "reference.db")
    steps = _promotion_writes(f"sqlite:///{tmp_path / 'reference.db'}")
    assert steps >= 8
    old = {"champion": "1", "previous-champion": None}
    new = {"champion": "2", "previous-champion": "1"}
    seen = set()
    for step in range(1, steps + 1):
        shutil.copy(template, tmp_path / f"step-{step}.db")
        store = f"sqlite:///{tmp_path / f'step-{step}.db'}"
        crash_after(step)
        with pytest.raises(Crash):
            promote(store, "2", "1")
        crash_after(10**9)
        repairs = recover(store, NAME)
        after = aliases(store)
        assert after in (old, new), (step, after)
        expected_state = "promoted" if after == new else "interrupted"
        if step == 1:
            expected_state = None  # died before its first write: the version was never touched
        assert state(store, "2") == expected_state, (step, repairs)
        # and a later night then promotes normally from whichever state it found
        outcome = promote(store, "2", after["champion"]) if after == old else None
        assert outcome is None or outcome.promoted
        seen.add("new" if after == new else "old")
    assert seen == {"old", "new"}


# ------------------------------------------------------------------------------------------------- the lock


def test_the_lock_target_follows_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LOCK_ENV, raising=False)
    assert lock_target(f"sqlite:///{tmp_path}/mlflow.db") == f"{tmp_path}/mlflow.db.promotion.lock"
    assert lock_target("postgresql://u@127.0.0.1:5432/mlflow") == "postgresql://u@127.0.0.1:5432/mlflow"
    assert lock_target(str(tmp_path / "mlruns")) == str(tmp_path / "mlruns" / ".promotion.lock")
    with pytest.raises(RegistryError, match=LOCK_ENV):
        lock_target("http://127.0.0.1:5000")
    assert lock_target("http://127.0.0.1:5000", str(tmp_path / "x.lock")) == str(tmp_path / "x.lock")
    monkeypatch.setenv(LOCK_ENV, str(tmp_path / "env.lock"))
    assert lock_target("http://127.0.0.1:5000", str(tmp_path / "x.lock")) == str(tmp_path / "env.lock")


def test_a_held_lock_makes_a_promotion_wait_then_fail_clearly(store: str, with_champion: list[str]) -> None:
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with promotion_lock(store, NAME):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(10)
    try:
        with pytest.raises(RegistryError, match="still held"):
            promote_verified(
                tracking_uri=store,
                model_name=NAME,
                version="2",
                expected_champion="1",
                reason="r",
                replay=matching,
                lock_timeout_s=0.3,
            )
    finally:
        release.set()
        thread.join()
    assert aliases(store) == {"champion": "1", "previous-champion": None}
    assert state(store, "2") == "verified"
    assert recover(store, NAME) == ["version 2: interrupted while verified: no alias had moved"]


KILLER = """
import os, signal, sys
from mlflow.tracking import MlflowClient
from stairways.promotion import promote_verified
store = sys.argv[1]
original = MlflowClient.set_registered_model_alias
def dying(self, name, alias, version):
    if alias == "champion":
        os.kill(os.getpid(), signal.SIGKILL)  # after previous-champion moved, before champion does
    return original(self, name, alias, version)
MlflowClient.set_registered_model_alias = dying
promote_verified(tracking_uri=store, model_name="agent", version="2", expected_champion="1", reason="r",
                 replay=lambda uri: ([1.0], None))
"""


@pytest.mark.slow
def test_kill_9_mid_commit_releases_the_lock_and_the_next_night_repairs(
    store: str, with_champion: list[str], tmp_path: Path
) -> None:
    import subprocess
    import sys

    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, str(script), store], cwd=root, timeout=120, check=False)
    assert done.returncode == -9
    assert aliases(store) == {"champion": "1", "previous-champion": "1"}  # half done, as the kill left it
    assert state(store, "2") == "committing"
    with promotion_lock(store, NAME, timeout_s=5):  # the kernel released the dead process's lock
        pass
    assert recover(store, NAME) == [
        "version 2: interrupted before the champion alias moved: previous-champion restored"
    ]
    assert aliases(store) == {"champion": "1", "previous-champion": None}
    assert promote(store, "3", "1").promoted
