"""Tests for stairways/rollback.py: moving the champion back to the previous or a named, verified version."""

import pytest

from core.errors import ConfigError, GateRejected, IntegrityError, RegistryError
from stairways.registry import CHAMPION_ALIAS, PREVIOUS_CHAMPION_ALIAS, current_champion
from stairways.rollback import rollback
from tests.stairways.registry_support import (
    Checkpoints,
    Tracking,
    aliases_by_version,
    failing_decision,
    local_path,
    promote,
    register,
)


def test_rollback_to_the_previous_champion_and_to_a_named_version(
    tracking: Tracking, checkpoints: Checkpoints
) -> None:
    for night in (1, 2, 3):
        candidate = register(tracking, checkpoints)
        promote(
            tracking_uri=tracking.uri,
            model_name=tracking.model_name,
            version=candidate.version,
            reason=f"night {night}",
        )
    assert aliases_by_version(tracking) == {"1": [], "2": [PREVIOUS_CHAMPION_ALIAS], "3": [CHAMPION_ALIAS]}

    record = rollback(tracking.uri, tracking.model_name, to_version=None, reason="replay mismatch")
    assert (record.champion, record.rolled_back, record.previous_champion) == ("2", "3", "1")
    assert aliases_by_version(tracking) == {"1": [PREVIOUS_CHAMPION_ALIAS], "2": [CHAMPION_ALIAS], "3": []}
    demoted = tracking.client().get_model_version(tracking.model_name, "3").tags
    assert demoted["rollback_reason"] == "replay mismatch"
    assert demoted["rolled_back_at"] == record.rolled_back_at
    assert demoted["rolled_back_to"] == "2"
    assert (
        tracking.client().get_model_version(tracking.model_name, "2").tags["restore_reason"]
        == "replay mismatch"
    )

    record = rollback(tracking.uri, tracking.model_name, to_version="3", reason="false alarm")
    assert (record.champion, record.rolled_back, record.previous_champion) == ("3", "2", "2")
    assert aliases_by_version(tracking) == {"1": [], "2": [PREVIOUS_CHAMPION_ALIAS], "3": [CHAMPION_ALIAS]}

    record = rollback(tracking.uri, tracking.model_name, to_version="1", reason="back to the first")
    assert (record.champion, record.rolled_back, record.previous_champion) == ("1", "3", None)
    assert aliases_by_version(tracking) == {"1": [CHAMPION_ALIAS], "2": [], "3": []}
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        rollback(tracking.uri, tracking.model_name, to_version=None, reason="again")
    with pytest.raises(RegistryError, match="already is the champion"):
        rollback(tracking.uri, tracking.model_name, to_version="1", reason="same")
    with pytest.raises(RegistryError, match="has no version '99'"):
        rollback(tracking.uri, tracking.model_name, to_version="99", reason="typo")
    assert aliases_by_version(tracking) == {"1": [CHAMPION_ALIAS], "2": [], "3": []}


def test_rollback_without_a_registered_model_is_a_registry_error(tracking: Tracking) -> None:
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        rollback(tracking.uri, "no-such-model", to_version=None, reason="x")
    with pytest.raises(RegistryError, match="no version '1'"):
        rollback(tracking.uri, "no-such-model", to_version="1", reason="x")


def test_rollback_refuses_an_empty_reason_a_tampered_target_and_an_unforced_rejected_one(
    tracking: Tracking, checkpoints: Checkpoints
) -> None:
    good = register(tracking, checkpoints)
    promote(tracking_uri=tracking.uri, model_name=tracking.model_name, version=good.version, reason="night 1")
    rejected = register(tracking, checkpoints, decision=failing_decision())
    tampered = register(tracking, checkpoints)
    stored = local_path(tampered.checkpoint_uri) / "model.zip"
    stored.write_bytes(stored.read_bytes() + b"\0")

    for empty in ("", "   "):
        with pytest.raises(ConfigError, match="needs a reason"):
            rollback(tracking.uri, tracking.model_name, to_version=rejected.version, reason=empty)
    with pytest.raises(GateRejected, match="needs --force"):
        rollback(tracking.uri, tracking.model_name, to_version=rejected.version, reason="try it")
    unverified = register(tracking, checkpoints)  # passed the gate, never replayed from the registry
    with pytest.raises(GateRejected, match="never verified by a replay"):
        rollback(tracking.uri, tracking.model_name, to_version=unverified.version, reason="try it")
    with pytest.raises(IntegrityError, match="model.zip"):
        rollback(tracking.uri, tracking.model_name, to_version=tampered.version, reason="try it", force=True)
    assert current_champion(tracking_uri=tracking.uri, model_name=tracking.model_name) == good.version

    record = rollback(
        tracking.uri, tracking.model_name, to_version=rejected.version, reason="ops", force=True
    )
    assert (record.champion, record.forced) == (rejected.version, True)
    tags = tracking.client().get_model_version(tracking.model_name, rejected.version).tags
    assert tags["restore_forced"] == "true" and tags["restore_reason"] == "ops"
    event = tracking.client().get_run(record.event_run_id)
    assert event.data.tags["event"] == "rollback"
    assert (event.data.tags["from"], event.data.tags["to"], event.data.tags["forced"]) == (
        good.version,
        rejected.version,
        "true",
    )
