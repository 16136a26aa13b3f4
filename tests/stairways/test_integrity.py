"""Tests for stairways/integrity.py: every file of a registered version is checked against its SHA-256."""

import json
from pathlib import Path

import mlflow
import pytest

from core.digest import file_digest
from core.errors import IntegrityError
from stairways.integrity import (
    LEGACY_SHA256_TAG_PREFIX,
    MANIFEST_PATH,
    MANIFEST_TAG,
    read_manifest,
    recorded_hashes,
    verify_checkpoint,
    write_manifest,
)
from stairways.registry import (
    CHAMPION_ALIAS,
    RegisteredCandidate,
    champion_checkpoint,
    download_verified,
    load_registered_model,
)
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
    _, version = load_registered_model(
        candidate.model_uri, tracking_uri=tracking.uri, destination=tmp_path / "clean"
    )
    assert str(version.version) == candidate.version


# ------------------------------------------------------------------------------------------------ manifest


def _model_root(candidate: RegisteredCandidate) -> Path:
    return local_path(candidate.checkpoint_uri).parent.parent


def _champion(tracking: Tracking, checkpoints: Checkpoints) -> RegisteredCandidate:
    candidate = register(tracking, checkpoints)
    promote(
        tracking_uri=tracking.uri, model_name=tracking.model_name, version=candidate.version, reason="first"
    )
    return candidate


def _refused_everywhere(
    tracking: Tracking, candidate: RegisteredCandidate, tmp_path: Path, match: str
) -> None:
    with pytest.raises(IntegrityError, match=match):
        champion_checkpoint(
            tracking_uri=tracking.uri, model_name=tracking.model_name, destination=tmp_path / "warm"
        )
    with pytest.raises(IntegrityError, match=match):
        load_registered_model(candidate.model_uri, tracking_uri=tracking.uri, destination=tmp_path / "load")


def test_a_tampered_manifest_is_refused_even_when_it_vouches_for_a_tampered_file(
    tracking: Tracking, checkpoints: Checkpoints, tmp_path: Path
) -> None:
    candidate = _champion(tracking, checkpoints)
    root = _model_root(candidate)
    weights = root / "artifacts/checkpoint/model.zip"
    weights.write_bytes(weights.read_bytes() + b"\0")
    manifest = root / MANIFEST_PATH
    recorded = json.loads(manifest.read_text())
    recorded["artifacts/checkpoint/model.zip"] = file_digest(weights)
    manifest.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")
    _refused_everywhere(
        tracking,
        candidate,
        tmp_path,
        r"integrity/manifest\.json has SHA-256 .* integrity\.manifest_sha256 tag",
    )


def test_a_missing_manifest_or_manifest_tag_is_refused(
    tracking: Tracking, checkpoints: Checkpoints, tmp_path: Path
) -> None:
    candidate = _champion(tracking, checkpoints)
    manifest = _model_root(candidate) / MANIFEST_PATH
    original = manifest.read_bytes()
    manifest.unlink()
    _refused_everywhere(tracking, candidate, tmp_path / "gone", r"integrity/manifest\.json is missing")
    manifest.write_bytes(original)
    tracking.client().delete_model_version_tag(tracking.model_name, candidate.version, MANIFEST_TAG)
    with pytest.raises(IntegrityError, match="no recorded SHA-256"):
        champion_checkpoint(
            tracking_uri=tracking.uri, model_name=tracking.model_name, destination=tmp_path / "warm"
        )
    with pytest.raises(IntegrityError, match="no SHA-256 to check"):
        download_verified(candidate.model_uri, tracking_uri=tracking.uri, destination=tmp_path / "load")


def test_a_version_registered_with_per_file_sha256_tags_still_verifies(
    tracking: Tracking, checkpoints: Checkpoints, tmp_path: Path
) -> None:
    """Compatibility: versions registered before the manifest carry one ``sha256.<path>`` tag per file."""
    candidate = _champion(tracking, checkpoints)
    root = _model_root(candidate)
    client = tracking.client()
    recorded = json.loads((root / MANIFEST_PATH).read_text())
    (root / MANIFEST_PATH).unlink()
    client.delete_model_version_tag(tracking.model_name, candidate.version, MANIFEST_TAG)
    for path, digest in recorded.items():
        client.set_model_version_tag(
            tracking.model_name, candidate.version, f"{LEGACY_SHA256_TAG_PREFIX}{path}", digest
        )

    warm = champion_checkpoint(
        tracking_uri=tracking.uri, model_name=tracking.model_name, destination=tmp_path / "warm"
    )
    assert warm.checkpoint is not None and warm.version == candidate.version
    _, version = load_registered_model(
        candidate.model_uri, tracking_uri=tracking.uri, destination=tmp_path / "load"
    )
    assert str(version.version) == candidate.version
    weights = root / "artifacts/checkpoint/model.zip"
    weights.write_bytes(weights.read_bytes() + b"\0")
    _refused_everywhere(tracking, candidate, tmp_path / "tampered", "model.zip")


def test_the_manifest_lists_every_other_file_and_is_read_only_after_its_digest_matches(
    tmp_path: Path,
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "sub" / "b.bin").write_bytes(b"b")
    digest = write_manifest(tmp_path)
    manifest = tmp_path / MANIFEST_PATH
    assert digest == file_digest(manifest)
    assert write_manifest(tmp_path) == digest  # deterministic, and never lists itself
    expected = {
        "a.txt": file_digest(tmp_path / "a.txt"),
        "sub/b.bin": file_digest(tmp_path / "sub" / "b.bin"),
    }
    assert read_manifest(manifest, digest) == expected
    assert recorded_hashes({MANIFEST_TAG: digest, "sha256.a.txt": "ignored"}, manifest) == expected
    assert recorded_hashes({"sha256.a.txt": "0" * 64, "gate.verdict": "passed"}, None) == {"a.txt": "0" * 64}
    assert recorded_hashes({"gate.verdict": "passed"}, None) == {}
    with pytest.raises(IntegrityError, match="has SHA-256"):
        read_manifest(manifest, "0" * 64)
    with pytest.raises(IntegrityError, match="is missing"):
        recorded_hashes({MANIFEST_TAG: digest}, None)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"not json", "is not JSON"),
        (b"{}", "non-empty object"),
        (b"[1, 2]", "non-empty object"),
        (json.dumps({"../outside": "0" * 64}).encode(), "not a file of the model"),
        (json.dumps({"/etc/passwd": "0" * 64}).encode(), "not a file of the model"),
        (json.dumps({MANIFEST_PATH: "0" * 64}).encode(), "not a file of the model"),
        (json.dumps({"MLmodel": "not-a-digest"}).encode(), "not a SHA-256"),
    ],
)
def test_a_malformed_manifest_is_refused(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "manifest.json"
    path.write_bytes(content)
    with pytest.raises(IntegrityError, match=problem):
        read_manifest(path, file_digest(path))
