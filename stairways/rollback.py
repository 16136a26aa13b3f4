"""Rollback: move the registry's ``champion`` back to ``previous-champion`` (or a named version), and record why.

:func:`rollback` needs a non-empty reason; the target's files are downloaded and checked first, its manifest
against its ``integrity.manifest_sha256`` tag and every file against the manifest
(:func:`stairways.registry.download_verified`: a tampered version is refused); a
version whose gate failed, or that was never verified by a replay from the registry (``promotion.state``),
needs ``force``; the move takes the promotion lock of :mod:`stairways.promotion` (after repairing interrupted
promotions). ``champion`` moves to the ``previous-champion`` version (or a named version); the demoted version
is tagged ``rolled_back_at``, ``rollback_reason``, ``rolled_back_to``, the restored one ``restored_at`` and
``restore_reason``. ``previous-champion`` then moves to the restored version's own predecessor (its
``promoted_from`` tag) or is removed when it has none, so rolling back again walks further back in history
instead of returning to the version just demoted. Each event overwrites the tags of the same name on a
version: they record its latest promotion or rollback. Every rollback is also an MLflow run of the experiment
:data:`EVENTS_EXPERIMENT` (from, to, reason, forced).
"""

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mlflow.tracking import MlflowClient

from core.errors import ConfigError, GateRejected, IntegrityError, RegistryError
from stairways.promotion import (
    STATE_TAG,
    VERIFIED_STATES,
    alias_version,
    model_version,
    promotion_lock,
    recover_interrupted,
)
from stairways.registry import CHAMPION_ALIAS, PREVIOUS_CHAMPION_ALIAS, VERDICT_TAG, download_verified

__all__ = ["EVENTS_EXPERIMENT", "RollbackRecord", "rollback"]

PROMOTED_FROM_TAG = "promoted_from"
EVENTS_EXPERIMENT = "stairways-registry-events"
"""MLflow experiment holding one run per manual registry event (rollbacks)."""
_MAX_REASON = 4000


@dataclass(frozen=True)
class RollbackRecord:
    """A rollback: the restored champion, the demoted version, and the new ``previous-champion``."""

    model_name: str
    champion: str
    rolled_back: str | None
    previous_champion: str | None
    reason: str
    rolled_back_at: str
    forced: bool = False
    event_run_id: str | None = None


def _client(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _existing(client: MlflowClient, model_name: str, version: str | None) -> str | None:
    """``version`` when it names an existing version of the model, else None."""
    if not version:
        return None
    try:
        return str(model_version(client, model_name, version).version)
    except RegistryError:
        return None


def rollback(
    tracking_uri: str,
    model_name: str,
    *,
    to_version: str | None,
    reason: str,
    force: bool = False,
    lock: str | None = None,
) -> RollbackRecord:
    """Move ``champion`` to ``to_version`` (None: the ``previous-champion`` version) and record why.

    Raises ``ConfigError`` for an empty reason; ``RegistryError`` when there is nothing to roll back to (no
    ``previous-champion`` and no ``to_version``), when ``to_version`` does not exist, or when the target
    already is the champion; ``IntegrityError`` when the target's files differ from its recorded SHA-256;
    ``GateRejected`` when the target's gate failed and ``force`` is not set. See the module docstring.
    """
    if not reason or not reason.strip():
        msg = 'a rollback needs a reason (--reason "..."): it is recorded on the versions and in a run'
        raise ConfigError(msg)
    client = _client(tracking_uri)
    with promotion_lock(tracking_uri, model_name, lock=lock):
        recover_interrupted(client, model_name)
        return _rollback_locked(
            client, tracking_uri, model_name, to_version=to_version, reason=reason, force=force
        )


def _record_event(client: MlflowClient, *, model_name: str, kind: str, tags: Mapping[str, str]) -> str:
    experiment = client.get_experiment_by_name(EVENTS_EXPERIMENT)
    experiment_id = (
        experiment.experiment_id if experiment is not None else client.create_experiment(EVENTS_EXPERIMENT)
    )
    run = client.create_run(
        experiment_id,
        run_name=f"{kind} {model_name}",
        tags={
            "event": kind,
            "model": model_name,
            **{key: value[:_MAX_REASON] for key, value in tags.items()},
        },
    )
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def _rollback_locked(
    client: MlflowClient,
    tracking_uri: str,
    model_name: str,
    *,
    to_version: str | None,
    reason: str,
    force: bool,
) -> RollbackRecord:
    champion = alias_version(client, model_name, CHAMPION_ALIAS)
    if to_version is None:
        previous = alias_version(client, model_name, PREVIOUS_CHAMPION_ALIAS)
        if previous is None:
            msg = (
                f"nothing to roll back to: registered model '{model_name}' has no "
                f"'{PREVIOUS_CHAMPION_ALIAS}' alias; name a version"
            )
            raise RegistryError(msg)
        target = previous
    else:
        target = model_version(client, model_name, to_version)
    number = str(target.version)
    demoted = None if champion is None else str(champion.version)
    if demoted == number:
        msg = f"version {number} of '{model_name}' already is the champion: nothing to roll back"
        raise RegistryError(msg)
    verdict = target.tags.get(VERDICT_TAG)
    if verdict != "passed" and not force:
        msg = (
            f"version {number} of '{model_name}' did not pass the gate ({VERDICT_TAG}={verdict!r}); restoring it "
            "needs --force"
        )
        raise GateRejected(msg)
    state = target.tags.get(STATE_TAG)
    if state not in VERIFIED_STATES and not force:
        msg = (
            f"version {number} of '{model_name}' was never verified by a replay from the registry "
            f"({STATE_TAG}={state!r}); restoring it needs --force"
        )
        raise GateRejected(msg)
    with tempfile.TemporaryDirectory(prefix="stairways-rollback-") as folder:
        try:
            download_verified(
                f"models:/{model_name}/{number}", tracking_uri=tracking_uri, destination=Path(folder)
            )
        except IntegrityError as error:
            msg = f"version {number} of '{model_name}' is not restored: {error}"
            raise IntegrityError(msg) from error

    # previous-champion first, champion last (the commit point): a crash in between leaves the old champion in
    # place and a rollback that can simply be run again, never previous-champion == champion.
    earlier = _existing(client, model_name, target.tags.get(PROMOTED_FROM_TAG))
    if earlier is not None and earlier != number:
        client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION_ALIAS, earlier)
    else:
        earlier = None
        if alias_version(client, model_name, PREVIOUS_CHAMPION_ALIAS) is not None:
            client.delete_registered_model_alias(model_name, PREVIOUS_CHAMPION_ALIAS)
    client.set_registered_model_alias(model_name, CHAMPION_ALIAS, number)
    rolled_back_at = _now()
    if demoted is not None:
        client.set_model_version_tag(model_name, demoted, "rolled_back_at", rolled_back_at)
        client.set_model_version_tag(model_name, demoted, "rollback_reason", reason[:_MAX_REASON])
        client.set_model_version_tag(model_name, demoted, "rolled_back_to", number)
    client.set_model_version_tag(model_name, number, "restored_at", rolled_back_at)
    client.set_model_version_tag(model_name, number, "restore_reason", reason[:_MAX_REASON])
    if force:
        client.set_model_version_tag(model_name, number, "restore_forced", "true")
    event = _record_event(
        client,
        model_name=model_name,
        kind="rollback",
        tags={"from": demoted or "", "to": number, "reason": reason, "forced": str(force).lower()},
    )
    return RollbackRecord(model_name, number, demoted, earlier, reason, rolled_back_at, force, event)
