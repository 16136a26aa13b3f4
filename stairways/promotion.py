"""Promotion as a transaction: verify the version first, then move the aliases under a lock, compare-and-set.

The order of one promotion of version ``V`` against the champion ``C`` the night compared it with:

1. ``V`` is tagged ``promotion.state = verifying``; nothing visible to a reader changes.
2. A fresh process replays ``models:/<name>/<V>`` (the version, never an alias) on the night's test
   episodes; its PnL must match the logged one. A mismatch tags ``replay_failed`` and raises
   :class:`~core.errors.ReplayMismatch`: no alias has moved, so there is nothing to revert.
3. ``V`` is tagged ``verified``. Then, holding the **promotion lock** (:func:`promotion_lock`), the champion
   is read again: if it is no longer ``C`` (another night, a manual run or a rollback moved it meanwhile),
   ``V`` is tagged ``superseded`` and nothing moves: the night reports that it did not promote and why.
4. Otherwise ``V`` is tagged ``committing`` with ``promoted_from = C`` and the ``previous-champion`` it
   found, ``previous-champion`` moves to ``C``, and last ``champion`` moves to ``V`` (the commit point: one
   alias update, so every reader sees exactly one champion, old or new, and never an unverified one).
   ``V`` is tagged ``promoted``.

**Crash recovery** (:func:`recover_interrupted`, run under the lock at the start of every night and of
every rollback): a process killed at any step leaves ``promotion.state`` on the version. ``verifying`` and
``verified`` become ``interrupted`` (nothing had moved). ``committing`` rolls *forward* to ``promoted`` when
``champion`` already names ``V`` (the commit point was passed) and *back* otherwise (``previous-champion``
restored to what it was, state ``interrupted``). Afterwards the registry is in one of the two consistent
states: the old champion with its old rollback target, or the new one with the old champion as target.

**The lock** serializes every alias move of a registry (nights, manual runs, rollbacks) across processes:
an exclusive ``fcntl`` lock on a file beside a SQLite store (or a file named by ``lock``), or a PostgreSQL
advisory lock for a PostgreSQL store (or a ``postgresql://`` URL named by ``lock``). A tracking *server*'s
database cannot be reached from here, so with an ``http(s)://`` tracking URI a lock target must be given
(``registry.promotion_lock`` or ``STAIRWAYS_PROMOTION_LOCK``); without one promotion fails closed.
"""

import contextlib
import fcntl
import os
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from core.errors import GateRejected, RegistryError, ReplayMismatch

__all__ = [
    "ABSENT_CODES",
    "LOCK_ENV",
    "VERIFIED_STATES",
    "STATE_TAG",
    "PromotionOutcome",
    "alias_version",
    "lock_target",
    "model_version",
    "promote_verified",
    "promotion_lock",
    "recover",
    "recover_interrupted",
]

LOCK_ENV = "STAIRWAYS_PROMOTION_LOCK"
STATE_TAG = "promotion.state"
VERIFIED_STATES: frozenset[str] = frozenset({"verified", "superseded", "committing", "promoted"})
"""``promotion.state`` values of a version whose replay from the registry matched."""
_NOTE_TAG = "promotion.note"
_PREVIOUS_BEFORE_TAG = "promotion.previous_before"
_CHAMPION = "champion"
_PREVIOUS = "previous-champion"
_PROMOTED_FROM = "promoted_from"
_VERDICT = "gate.verdict"
ABSENT_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"})
"""MLflow error codes that mean "no such registered model, version or alias"."""
_MAX_TEXT = 4000
_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class PromotionOutcome:
    """What a promotion attempt really did: whether the version became champion, the champion now, why."""

    promoted: bool
    champion: str | None
    reason: str
    replayed: tuple[float, ...] = ()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _client(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def alias_version(client: MlflowClient, model_name: str, alias: str) -> ModelVersion | None:
    """The version ``alias`` names; None when the alias or the registered model does not exist."""
    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException as error:
        if error.error_code in ABSENT_CODES:
            return None
        raise


def _alias(client: MlflowClient, model_name: str, alias: str) -> str | None:
    version = alias_version(client, model_name, alias)
    return None if version is None else str(version.version)


def model_version(client: MlflowClient, model_name: str, version: str) -> ModelVersion:
    """The registered version; ``RegistryError`` naming it when it does not exist."""
    try:
        return client.get_model_version(model_name, str(version))
    except MlflowException as error:
        if error.error_code in ABSENT_CODES:
            msg = f"registered model '{model_name}' has no version {version!r}"
            raise RegistryError(msg) from error
        raise


def _tag(client: MlflowClient, model_name: str, version: str, **tags: str) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key.replace("__", "."), value[:_MAX_TEXT])


def _set_alias(client: MlflowClient, model_name: str, alias: str, version: str | None) -> None:
    """Point ``alias`` at ``version``; None removes it."""
    if version is not None:
        client.set_registered_model_alias(model_name, alias, version)
    elif _alias(client, model_name, alias) is not None:
        client.delete_registered_model_alias(model_name, alias)


# --------------------------------------------------------------------------------------------------------
# The lock


def lock_target(tracking_uri: str, lock: str | None = None) -> str:
    """The lock every alias move of this registry takes: ``$STAIRWAYS_PROMOTION_LOCK``, ``lock``, or derived.

    Derived from the tracking URI: a file beside a SQLite database, a file in a local file store, the
    PostgreSQL database itself. Raises ``RegistryError`` for a tracking server without an explicit lock.
    """
    explicit = os.environ.get(LOCK_ENV) or lock
    if explicit:
        return explicit
    parsed = urlparse(tracking_uri)
    if parsed.scheme == "sqlite":
        database = unquote(tracking_uri.split(":///", 1)[1]) if ":///" in tracking_uri else ""
        if not database or database == ":memory:":
            msg = f"cannot lock promotions on an in-memory SQLite store ({tracking_uri})"
            raise RegistryError(msg)
        return f"{database}.promotion.lock"
    if parsed.scheme.startswith("postgresql"):
        return tracking_uri
    if parsed.scheme in ("", "file"):
        folder = unquote(parsed.path) if parsed.scheme == "file" else tracking_uri
        return str(Path(folder) / ".promotion.lock")
    msg = (
        f"the tracking store {tracking_uri} is a server whose database cannot be locked from here: set "
        f"registry.promotion_lock (or {LOCK_ENV}) to a file path every night can reach, or to the "
        "server's postgresql:// database URL"
    )
    raise RegistryError(msg)


@contextlib.contextmanager
def _file_lock(path: Path, *, timeout_s: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    msg = f"the promotion lock {path} is still held after {timeout_s:.0f} s"
                    raise RegistryError(msg) from None
                time.sleep(_POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def _advisory_lock(url: str, key: str, *, timeout_s: float) -> Iterator[None]:
    import sqlalchemy  # the store's own driver stack; only PostgreSQL stores need it here

    number = zlib.crc32(f"stairways-promotion:{key}".encode())
    engine = sqlalchemy.create_engine(url.replace("postgresql+asyncpg", "postgresql"), poolclass=None)
    try:
        with engine.connect() as connection:
            deadline = time.monotonic() + timeout_s
            while not connection.execute(sqlalchemy.text(f"SELECT pg_try_advisory_lock({number})")).scalar():
                if time.monotonic() > deadline:
                    msg = f"the promotion lock (PostgreSQL advisory lock {number}) is still held after {timeout_s:.0f} s"
                    raise RegistryError(msg)
                time.sleep(_POLL_SECONDS)
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text(f"SELECT pg_advisory_unlock({number})"))
    finally:
        engine.dispose()


@contextlib.contextmanager
def promotion_lock(
    tracking_uri: str, model_name: str, *, lock: str | None = None, timeout_s: float = 600.0
) -> Iterator[str]:
    """Hold the registry's promotion lock (see the module docstring); yields the lock's target."""
    target = lock_target(tracking_uri, lock)
    if target.startswith("postgresql"):
        with _advisory_lock(target, model_name, timeout_s=timeout_s):
            yield target
    else:
        with _file_lock(Path(target), timeout_s=timeout_s):
            yield target


# --------------------------------------------------------------------------------------------------------
# Promotion and recovery


def recover_interrupted(client: MlflowClient, model_name: str) -> list[str]:
    """Finish or undo promotions a killed process left half done; one line per repair. Hold the lock."""
    try:
        versions = client.search_model_versions(f"name='{model_name}'")
    except MlflowException as error:
        if error.error_code in ABSENT_CODES:
            return []
        raise
    champion = _alias(client, model_name, _CHAMPION)
    repairs = []
    for version in versions:
        number = str(version.version)
        state = version.tags.get(STATE_TAG)
        if state in ("verifying", "verified"):
            note = f"interrupted while {state}: no alias had moved"
            _tag(client, model_name, number, promotion__state="interrupted", promotion__note=note)
            repairs.append(f"version {number}: {note}")
        elif state == "committing":
            if champion == number:
                previous = version.tags.get(_PROMOTED_FROM) or version.tags.get(_PREVIOUS_BEFORE_TAG) or None
                _set_alias(client, model_name, _PREVIOUS, previous)
                note = "interrupted after the champion alias moved: promotion completed"
                _tag(client, model_name, number, promotion__state="promoted", promotion__note=note)
            else:
                _set_alias(client, model_name, _PREVIOUS, version.tags.get(_PREVIOUS_BEFORE_TAG) or None)
                note = "interrupted before the champion alias moved: previous-champion restored"
                _tag(client, model_name, number, promotion__state="interrupted", promotion__note=note)
            repairs.append(f"version {number}: {note}")
    return repairs


def recover(tracking_uri: str, model_name: str, *, lock: str | None = None) -> list[str]:
    """Take the lock and :func:`recover_interrupted`; the repairs made (the start of every night)."""
    with promotion_lock(tracking_uri, model_name, lock=lock):
        return recover_interrupted(_client(tracking_uri), model_name)


def promote_verified(
    *,
    tracking_uri: str,
    model_name: str,
    version: str,
    expected_champion: str | None,
    reason: str,
    replay: Callable[[str], tuple[list[float], str | None]],
    lock: str | None = None,
    lock_timeout_s: float = 600.0,
) -> PromotionOutcome:
    """Verify ``version`` by ``replay``, then make it champion if the champion is still ``expected_champion``.

    ``replay(model_uri)`` replays ``models:/<name>/<version>`` in a fresh process and returns the replayed
    PnL and None when it matches, or a mismatch description. Raises ``GateRejected`` for a version whose
    gate did not pass, ``RegistryError`` for an unknown version or an unavailable lock, and
    ``ReplayMismatch`` when the replay does not match (no alias moved). See the module docstring.
    """
    lock_target(tracking_uri, lock)  # no lock to be had: fail closed before any work or tag
    client = _client(tracking_uri)
    candidate = model_version(client, model_name, version)
    number = str(candidate.version)
    if candidate.tags.get(_VERDICT) != "passed":
        msg = f"version {number} of '{model_name}' did not pass the gate ({_VERDICT}={candidate.tags.get(_VERDICT)!r})"
        raise GateRejected(msg)
    _tag(client, model_name, number, promotion__state="verifying", promotion__note=f"started {_now()}")
    try:
        replayed, mismatch = replay(f"models:/{model_name}/{number}")
    except Exception as error:
        _tag(
            client,
            model_name,
            number,
            promotion__state="replay_failed",
            promotion__note=f"replay failed: {error}",
        )
        raise
    if mismatch is not None:
        _tag(client, model_name, number, promotion__state="replay_failed", promotion__note=mismatch)
        msg = f"version {number} was not promoted: the replay from the registry did not match: {mismatch}"
        raise ReplayMismatch(msg)
    _tag(client, model_name, number, promotion__state="verified", promotion__note=f"replay matched {_now()}")
    with promotion_lock(tracking_uri, model_name, lock=lock, timeout_s=lock_timeout_s):
        recover_interrupted(client, model_name)
        champion = _alias(client, model_name, _CHAMPION)
        if champion != expected_champion:
            note = (
                f"not promoted: the champion moved from {expected_champion or 'none'} to {champion or 'none'} "
                "after this night compared against it (another night, a manual run or a rollback); re-run "
                "the night to judge against the current champion"
            )
            _tag(client, model_name, number, promotion__state="superseded", promotion__note=note)
            return PromotionOutcome(False, champion, note, tuple(replayed))
        previous_before = _alias(client, model_name, _PREVIOUS)
        promoted_at = _now()
        _tag(
            client,
            model_name,
            number,
            promoted_from=expected_champion or "",
            promoted_at=promoted_at,
            promotion_reason=reason,
            promotion__previous_before=previous_before or "",
            promotion__state="committing",
        )
        if expected_champion is not None:
            _set_alias(client, model_name, _PREVIOUS, expected_champion)
        client.set_registered_model_alias(model_name, _CHAMPION, number)
        _tag(
            client,
            model_name,
            number,
            promotion__state="promoted",
            promotion__note=f"champion since {promoted_at}",
        )
    return PromotionOutcome(True, number, reason, tuple(replayed))
