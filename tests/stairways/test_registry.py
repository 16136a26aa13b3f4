import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import numpy as np
import pytest

from core.digest import file_digest
from core.errors import ConfigError, GateRejected, IntegrityError, RegistryError
from envs.market_arrays import MarketArrays
from stairways.integrity import CHECKPOINT_PATH, checkpoint_hashes, verify_checkpoint
from stairways.registry import (
    CHAMPION_ALIAS,
    CHECKPOINT_TAG,
    PREVIOUS_CHAMPION_ALIAS,
    champion_checkpoint,
    current_champion,
    load_registered_model,
    register_candidate,
)
from stairways.rollback import rollback
from tests.stairways.registry_support import (
    Checkpoints,
    Tracking,
    build_checkpoints,
    failing_decision,
    local_path,
    new_tracking,
    passing_decision,
    promote,
    register,
)
from training.checkpoints import CHECKPOINT_FILES, check_warm_start, load_checkpoint


def observations(market: MarketArrays, rows: int = 64, *, seed: int = 0) -> np.ndarray:
    """Held-out feature rows with random positions in {-1, 0, 1}."""
    generator = np.random.default_rng(seed)
    batch = np.zeros((rows, market.features.shape[1] + 2), dtype=np.float32)
    batch[:, :-2] = market.features[:rows]
    batch[:, -2:] = generator.integers(-1, 2, size=(rows, 2))
    return batch




def aliases_by_version(tracking: Tracking) -> dict[str, list[str]]:
    client = tracking.client()
    numbers = [
        str(version.version) for version in client.search_model_versions(f"name='{tracking.model_name}'")
    ]
    # search results carry no aliases: read each version
    return {
        number: sorted(client.get_model_version(tracking.model_name, number).aliases)
        for number in sorted(numbers)
    }


@contextmanager
def global_tracking_uri(uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """MLflow's process-wide tracking URI set to ``uri`` for the block, restored afterwards."""
    previous = mlflow.get_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Checkpoints:
    return build_checkpoints(tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store per module (creating one costs seconds); each test has its own model name."""
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


@pytest.fixture
def tracking(store: str, tmp_path: Path) -> Tracking:
    return new_tracking(store, tmp_path)


# ------------------------------------------------------------------------------------------- register


def test_register_candidate_records_the_gate_lineage_and_hashes(
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
    assert decision.metric_tags().items() <= tags.items()
    assert tags["gate.held_out/mixed.total_return"] == "1.5"
    assert tags["parent_run_id"] == tracking.run_id
    assert tags["data_digest"] == "digest-of-the-data"
    for name in CHECKPOINT_FILES:
        assert tags[f"sha256.{CHECKPOINT_PATH}/{name}"] == file_digest(checkpoints.trained / name)
    assert {"sha256.MLmodel", "sha256.agent_model.py"} <= tags.keys()
    assert not [key for key in tags if key.endswith(".pkl")]  # models-from-code: no pickled wrapper
    assert checkpoint_hashes(tags) == {
        name: file_digest(checkpoints.trained / name) for name in CHECKPOINT_FILES
    }
    stored = local_path(tags[CHECKPOINT_TAG])
    assert stored.is_relative_to(tracking.root / "artifacts")
    assert sorted(path.name for path in stored.iterdir()) == sorted(CHECKPOINT_FILES)
    assert version.aliases == []
    assert current_champion(tracking_uri=tracking.uri, model_name=tracking.model_name) is None
    logged = tracking.client().get_logged_model(candidate.model_id)
    assert logged.source_run_id == tracking.run_id
    assert version.run_id == tracking.run_id


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
    actions = model.predict(batch)
    assert isinstance(actions, np.ndarray)
    assert actions.dtype == np.int64
    np.testing.assert_array_equal(actions, expected)
    np.testing.assert_array_equal(model.predict(batch), actions)
    inputs = model.metadata.get_input_schema().inputs[0]
    assert inputs.type == np.dtype(np.float32)
    assert inputs.shape == (-1, len(checkpoints.observation_names))
    assert model.metadata.get_output_schema().inputs[0].type == np.dtype(np.int64)
    assert model.metadata.metadata["observation_names"] == list(checkpoints.observation_names)
    verified, version = load_registered_model(
        f"models:/{tracking.model_name}@{CHAMPION_ALIAS}",
        tracking_uri=tracking.uri,
        destination=tmp_path / "load",
    )
    assert str(version.version) == candidate.version
    np.testing.assert_array_equal(verified.predict(batch), expected)
    with pytest.raises(mlflow.exceptions.MlflowException, match="dtype"):
        model.predict(batch.astype(np.float64))


# --------------------------------------------------------------------------------------------- integrity


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


def test_a_tampered_model_file_is_never_loaded(
    tracking: Tracking, checkpoints: Checkpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    candidate = register(tracking, checkpoints)
    promote(
        tracking_uri=tracking.uri, model_name=tracking.model_name, version=candidate.version, reason="first"
    )
    stored = local_path(candidate.checkpoint_uri) / "model.zip"
    stored.write_bytes(stored.read_bytes() + b"\0")

    with pytest.raises(IntegrityError, match="model.zip"):
        champion_checkpoint(
            tracking_uri=tracking.uri, model_name=tracking.model_name, destination=tmp_path / "warm"
        )
    with pytest.raises(IntegrityError, match="model.zip"):
        load_registered_model(candidate.model_uri, tracking_uri=tracking.uri, destination=tmp_path / "load")
    # Loaded by plain MLflow, the pyfunc's load_context checks the hashes stored in the model's config.
    with global_tracking_uri(tracking.uri, monkeypatch), pytest.raises(IntegrityError, match="model.zip"):
        mlflow.pyfunc.load_model(f"models:/{tracking.model_name}@{CHAMPION_ALIAS}")


def test_a_tampered_pyfunc_wrapper_is_refused_before_mlflow_reads_it(
    tracking: Tracking, checkpoints: Checkpoints, tmp_path: Path
) -> None:
    candidate = register(tracking, checkpoints)
    wrapper = local_path(candidate.checkpoint_uri).parent.parent / "agent_model.py"
    assert wrapper.is_file()
    wrapper.write_bytes(b"not the registered wrapper")
    with pytest.raises(IntegrityError, match="agent_model.py"):
        load_registered_model(candidate.model_uri, tracking_uri=tracking.uri, destination=tmp_path / "load")


def test_verify_checkpoint(checkpoints: Checkpoints, tmp_path: Path) -> None:
    expected = {name: file_digest(checkpoints.trained / name) for name in CHECKPOINT_FILES}
    verify_checkpoint(checkpoints.trained, expected)
    with pytest.raises(IntegrityError, match="no recorded SHA-256 for \\['controller.json'\\]"):
        verify_checkpoint(checkpoints.trained, {k: v for k, v in expected.items() if k != "controller.json"})
    with pytest.raises(IntegrityError, match="vecnormalize.npz .* has SHA-256"):
        verify_checkpoint(checkpoints.trained, {**expected, "vecnormalize.npz": "0" * 64})
    with pytest.raises(IntegrityError, match="controller.json is missing"):
        verify_checkpoint(tmp_path, expected)


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
    assert tags["gate.held_out/mixed.max_drawdown"] == "3.5"
    assert "max_drawdown" in tags["gate.reason"]
    assert "promoted_at" not in tags


# -------------------------------------------------------------------------------------------- rollback


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


def _model_files(root: Path) -> list[str]:
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())


def test_one_tampered_byte_in_any_file_of_a_version_is_refused_before_loading(
    tracking: Tracking, checkpoints: Checkpoints, tmp_path: Path
) -> None:
    candidate = register(tracking, checkpoints)
    root = local_path(candidate.checkpoint_uri).parent.parent
    files = _model_files(root)
    assert {"MLmodel", "agent_model.py", "artifacts/checkpoint/model.zip"} <= set(files)
    for index, name in enumerate(files):
        path = root / name
        original = path.read_bytes()
        tampered = bytearray(original)
        tampered[len(tampered) // 2] ^= 0x01
        path.write_bytes(bytes(tampered))
        try:
            with pytest.raises(IntegrityError, match=name.replace(".", r"\.")):
                load_registered_model(
                    candidate.model_uri, tracking_uri=tracking.uri, destination=tmp_path / f"load-{index}"
                )
        finally:
            path.write_bytes(original)
    model, version = load_registered_model(
        candidate.model_uri, tracking_uri=tracking.uri, destination=tmp_path / "clean"
    )
    assert str(version.version) == candidate.version


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
