"""Tests for stairways/integrity.py: every file of a registered version is checked against its SHA-256."""

from pathlib import Path

import mlflow
import pytest

from core.digest import file_digest
from core.errors import IntegrityError
from stairways.integrity import verify_checkpoint
from stairways.registry import CHAMPION_ALIAS, champion_checkpoint, load_registered_model
from tests.stairways.registry_support import (
    Checkpoints,
    Tracking,
    global_tracking_uri,
    local_path,
    promote,
    register,
)
from training.checkpoints import CHECKPOINT_FILES


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
