"""Tests for stairways/registry.py: registering a candidate, the pyfunc, champion checkpoints, promotion."""

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest

from core.digest import file_digest
from core.errors import GateRejected, RegistryError
from core.spec import ACTION_MEANINGS
from stairways.integrity import CHECKPOINT_PATH, MANIFEST_PATH, MANIFEST_TAG
from stairways.registry import (
    CHAMPION_ALIAS,
    CHECKPOINT_TAG,
    CRITERIA_PATH,
    PREVIOUS_CHAMPION_ALIAS,
    champion_checkpoint,
    current_champion,
    load_registered_model,
    register_candidate,
)
from tests.stairways.registry_support import (
    Checkpoints,
    Tracking,
    aliases_by_version,
    failing_decision,
    global_tracking_uri,
    local_path,
    observations,
    passing_decision,
    promote,
    register,
)
from training.checkpoints import CHECKPOINT_FILES, check_warm_start, load_checkpoint

MAX_VERSION_TAGS = 11
"""Tags on a registered version: searchable figures and lineage only (issue 15)."""

# ------------------------------------------------------------------------------------------- register


def test_register_candidate_records_the_gate_lineage_and_a_manifest(
    tracking: Tracking, checkpoints: Checkpoints
) -> None:
    decision = passing_decision()
    candidate = register(tracking, checkpoints, decision=decision)
    assert candidate.version == "1"
    assert candidate.model_uri == f"models:/{tracking.model_name}/1"
    version = tracking.client().get_model_version(tracking.model_name, "1")
    tags = version.tags
    assert tags == candidate.tags
    assert tags["gate.verdict"] == "passed"
    assert tags["gate.reason"] == decision.reason
    assert tags["gate.test_sharpe"] == "1.2"
    assert tags["parent_run_id"] == tracking.run_id
    assert tags["run_url"] == f"runs:/{tracking.run_id}"  # a local store has no UI page
    assert tags["data_digest"] == "digest-of-the-data"
    root = local_path(tags[CHECKPOINT_TAG]).parent.parent
    manifest = root / MANIFEST_PATH
    assert tags[MANIFEST_TAG] == file_digest(manifest)
    recorded = json.loads(manifest.read_text())
    for name in CHECKPOINT_FILES:
        assert recorded[f"{CHECKPOINT_PATH}/{name}"] == file_digest(checkpoints.trained / name)
    files = {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}
    assert set(recorded) == files - {MANIFEST_PATH}  # every other file of the model, the gate record too
    assert {"MLmodel", "agent_model.py", CRITERIA_PATH} <= recorded.keys()
    assert not [name for name in files if name.endswith(".pkl")]  # models-from-code: no pickled wrapper
    stored = local_path(tags[CHECKPOINT_TAG])
    assert stored.is_relative_to(tracking.root / "artifacts")
    assert sorted(path.name for path in stored.iterdir()) == sorted(CHECKPOINT_FILES)
    assert version.aliases == []
    assert current_champion(tracking_uri=tracking.uri, model_name=tracking.model_name) is None
    logged = tracking.client().get_logged_model(candidate.model_id)
    assert logged.source_run_id == tracking.run_id
    assert version.run_id == tracking.run_id
    assert CRITERIA_PATH in version.description


def test_a_version_carries_few_tags_and_every_criterion_in_its_gate_record(
    tracking: Tracking, checkpoints: Checkpoints
) -> None:
    """Regression (issue 15): one tag per criterion and per file cluttered the versions table."""
    decision = failing_decision()
    candidate = register_candidate(
        tracking_uri=tracking.uri,
        model_name=tracking.model_name,
        run_id=tracking.run_id,
        checkpoint=checkpoints.trained,
        decision=decision,
        data_digest="d",
        observation_names=checkpoints.observation_names,
        champion_version="4",
        scenario_episodes={"held_out/mixed": 10},
    )
    tags = tracking.client().get_model_version(tracking.model_name, candidate.version).tags
    assert set(tags) == {
        "gate.verdict",
        "gate.reason",
        "gate.champion",
        "gate.test_sharpe",
        "gate.champion_margin_pct",
        "gate.deflated_sharpe",
        "parent_run_id",
        "run_url",
        "data_digest",
        "checkpoint_uri",
        "integrity.manifest_sha256",
    }
    assert len(tags) <= MAX_VERSION_TAGS
    assert not [key for key in tags if key.startswith("sha256.")]
    assert candidate.criteria_uri.endswith(CRITERIA_PATH)
    record = json.loads(local_path(candidate.criteria_uri).read_text())
    assert record["verdict"] == "failed"
    assert len(record["criteria"]) == len(decision.results)
    for row, result in zip(record["criteria"], decision.results, strict=True):
        assert (row["scenario"], row["criterion"], row["rule"]) == (
            result.scenario,
            result.criterion,
            result.threshold,
        )
        assert row["value"] == result.value
        assert row["verdict"] == ("pass" if result.passed else "fail")
        assert {"comparison", "threshold", "reason"} <= row.keys()
    drawdown = next(
        row
        for row in record["criteria"]
        if (row["scenario"], row["criterion"]) == ("held_out/mixed", "max_drawdown")
    )
    assert (drawdown["value"], drawdown["comparison"], drawdown["threshold"]) == (3.5, "<=", 2.0)
    assert (drawdown["verdict"], drawdown["episodes"]) == ("fail", 10.0)
    assert record["statistics"]["champion_version"] == "4"


def test_register_candidate_refuses_observation_names_that_do_not_fit(
    tracking: Tracking, checkpoints: Checkpoints
) -> None:
    names = list(checkpoints.observation_names)
    with pytest.raises(ValueError, match="observation_names has"):
        register_candidate(
            tracking_uri=tracking.uri,
            model_name=tracking.model_name,
            run_id=tracking.run_id,
            checkpoint=checkpoints.trained,
            decision=passing_decision(),
            data_digest="d",
            observation_names=names[:-1],
        )
    with pytest.raises(ValueError, match="feature list differs"):
        register_candidate(
            tracking_uri=tracking.uri,
            model_name=tracking.model_name,
            run_id=tracking.run_id,
            checkpoint=checkpoints.trained,
            decision=passing_decision(),
            data_digest="d",
            observation_names=[names[1], names[0], *names[2:]],
        )


def test_pyfunc_by_alias_predicts_the_checkpoint_policy_actions(
    tracking: Tracking, checkpoints: Checkpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    candidate = register(tracking, checkpoints)
    promote(
        tracking_uri=tracking.uri, model_name=tracking.model_name, version=candidate.version, reason="first"
    )
    batch = observations(checkpoints.validation)
    expected = load_checkpoint(checkpoints.trained).predict(batch)
    assert len(set(expected.tolist())) > 1  # the comparison below would be weak on a constant policy
    with global_tracking_uri(tracking.uri, monkeypatch):
        model = mlflow.pyfunc.load_model(f"models:/{tracking.model_name}@{CHAMPION_ALIAS}")
    answer = model.predict(batch)
    actions = answer["action"].to_numpy()
    assert actions.dtype == np.int64
    np.testing.assert_array_equal(actions, expected)
    np.testing.assert_array_equal(model.predict(batch)["action"].to_numpy(), actions)
    # Named: the action's meaning and each ticker's order beside the index.
    symbols = list(checkpoints.validation.symbols)
    assert list(answer.columns) == ["action", "meaning", *symbols]
    for row, action in zip(answer.itertuples(index=False), actions, strict=True):
        assert row.meaning == ACTION_MEANINGS[action]
        assert (getattr(row, symbols[0]), getattr(row, symbols[1])) == tuple(row.meaning.split("/"))
    inputs = model.metadata.get_input_schema().inputs[0]
    assert inputs.type == np.dtype(np.float32)
    assert inputs.shape == (-1, len(checkpoints.observation_names))
    assert model.metadata.get_output_schema().input_names() == ["action", "meaning", *symbols]
    assert model.metadata.metadata["observation_names"] == list(checkpoints.observation_names)
    verified, version = load_registered_model(
        f"models:/{tracking.model_name}@{CHAMPION_ALIAS}",
        tracking_uri=tracking.uri,
        destination=tmp_path / "load",
    )
    assert str(version.version) == candidate.version
    np.testing.assert_array_equal(verified.predict(batch)["action"].to_numpy(), expected)
    with pytest.raises(mlflow.exceptions.MlflowException, match="dtype"):
        model.predict(batch.astype(np.float64))


# ----------------------------------------------------------------------------------- champion checkpoint


def test_champion_checkpoint_is_verified_and_fits_training(
    tracking: Tracking, checkpoints: Checkpoints, tmp_path: Path
) -> None:
    absent = champion_checkpoint(
        tracking_uri=tracking.uri, model_name=tracking.model_name, destination=tmp_path / "a"
    )
    assert absent.checkpoint is None
    assert "no 'champion' alias" in absent.reason
    candidate = register(tracking, checkpoints)
    promote(
        tracking_uri=tracking.uri, model_name=tracking.model_name, version=candidate.version, reason="first"
    )
    warm = champion_checkpoint(
        tracking_uri=tracking.uri, model_name=tracking.model_name, destination=tmp_path / "b"
    )
    assert warm.version == candidate.version
    assert warm.checkpoint is not None
    for name in CHECKPOINT_FILES:
        assert (warm.checkpoint / name).read_bytes() == (checkpoints.trained / name).read_bytes()
    meta = json.loads((warm.checkpoint / "meta.json").read_text())
    problem = check_warm_start(
        warm.checkpoint,
        observation_size=meta["observation_shape"][0],
        action_count=9,
        feature_names=checkpoints.observation_names[:-2],
    )
    assert problem is None


# ------------------------------------------------------------------------------------------- promotion


def test_promotion_moves_champion_and_previous_champion(tracking: Tracking, checkpoints: Checkpoints) -> None:
    first = register(tracking, checkpoints, checkpoint=checkpoints.baseline)
    second = register(tracking, checkpoints)
    outcome = promote(
        tracking_uri=tracking.uri, model_name=tracking.model_name, version=first.version, reason="night 1"
    )
    assert (outcome.promoted, outcome.champion) == (True, "1")
    assert aliases_by_version(tracking) == {"1": [CHAMPION_ALIAS], "2": []}
    promote(
        tracking_uri=tracking.uri, model_name=tracking.model_name, version=second.version, reason="night 2"
    )
    assert aliases_by_version(tracking) == {"1": [PREVIOUS_CHAMPION_ALIAS], "2": [CHAMPION_ALIAS]}
    assert current_champion(tracking_uri=tracking.uri, model_name=tracking.model_name) == "2"
    tags = tracking.client().get_model_version(tracking.model_name, "2").tags
    assert tags["promotion_reason"] == "night 2"
    assert tags["promoted_from"] == "1"
    assert tags["promotion.state"] == "promoted"
    with pytest.raises(RegistryError, match="has no version '7'"):
        promote(tracking_uri=tracking.uri, model_name=tracking.model_name, version="7", reason="typo")


def test_a_failing_candidate_keeps_its_version_and_gets_no_alias(
    tracking: Tracking, checkpoints: Checkpoints
) -> None:
    champion = register(tracking, checkpoints)
    promote(
        tracking_uri=tracking.uri, model_name=tracking.model_name, version=champion.version, reason="night 1"
    )
    decision = failing_decision()
    assert not decision.passed
    failed = register(tracking, checkpoints, decision=decision)
    with pytest.raises(GateRejected, match="did not pass the gate"):
        promote(
            tracking_uri=tracking.uri, model_name=tracking.model_name, version=failed.version, reason="try"
        )
    assert aliases_by_version(tracking) == {"1": [CHAMPION_ALIAS], "2": []}
    tags = tracking.client().get_model_version(tracking.model_name, failed.version).tags
    assert tags["gate.verdict"] == "failed"
    assert "max_drawdown" in tags["gate.reason"]
    assert "promoted_at" not in tags


# ----------------------------------------------------------------------------------------- fetch-model


def test_fetch_model_gives_a_verified_copy_or_refuses(
    tracking: Tracking,
    checkpoints: Checkpoints,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ops.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.uri)
    candidate = register(tracking, checkpoints)
    promote(tracking_uri=tracking.uri, model_name=tracking.model_name, version=candidate.version, reason="n1")
    arguments = ["fetch-model", "--model", tracking.model_name]
    assert main([*arguments, "--to", str(tmp_path / "copy")]) == 0
    out = capsys.readouterr().out
    assert f"version {candidate.version}" in out and "mlflow models serve -m" in out
    assert list((tmp_path / "copy").rglob("agent_model.py"))
    stored = local_path(candidate.checkpoint_uri) / "controller.json"
    stored.write_bytes(stored.read_bytes() + b" ")
    assert main([*arguments, "--to", str(tmp_path / "tampered")]) == 1
    assert "IntegrityError" in capsys.readouterr().err
    assert main([*arguments, "--to", str(tmp_path / "copy")]) == 1
    assert "is not empty" in capsys.readouterr().err
