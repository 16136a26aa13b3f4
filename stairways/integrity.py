"""The SHA-256 of a registered version's files: where they lie, how they are recorded, how they are checked.

A version's files are the files of its logged pyfunc model; the training checkpoint is bundled as the
artifact :data:`CHECKPOINT_ARTIFACT`, at :data:`CHECKPOINT_PATH` inside the model. At registration
:func:`write_manifest` writes the **manifest** :data:`MANIFEST_PATH` into the model: a JSON object mapping
the path of every other file of the model (relative to its root, POSIX separators: ``MLmodel``,
``agent_model.py``, ``artifacts/checkpoint/model.zip``, ``gate/criteria.json``) to its SHA-256. The
manifest's own SHA-256 is the one version tag :data:`MANIFEST_TAG` (``integrity.manifest_sha256``).

SB3 files and the pyfunc wrapper contain pickles, so no file is loaded before its SHA-256 is checked. Every
check first reads the manifest and refuses it unless its SHA-256 is the tag's (:func:`recorded_hashes`),
then checks the files against it: :func:`stairways.registry.champion_checkpoint` the downloaded checkpoint,
:func:`stairways.registry.load_registered_model` every downloaded model file before
``mlflow.pyfunc.load_model``; and :meth:`stairways.agent_pyfunc.AgentPyfunc.load_context` checks the
checkpoint files against the hashes stored in the model's ``model_config`` at registration (the same values;
it cannot see the registry, and ``MLmodel``, which holds them, is itself in the manifest). A mismatch, a
missing file or a file without a recorded SHA-256 raises :class:`~core.errors.IntegrityError` naming it.

**Versions registered before the manifest** carry one tag ``sha256.<path>`` per file
(:data:`LEGACY_SHA256_TAG_PREFIX`) and no manifest tag: :func:`recorded_hashes` reads those tags instead, so
they verify exactly as they did.
"""

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from core.digest import file_digest
from core.errors import IntegrityError
from training.checkpoints import CHECKPOINT_FILES

__all__ = [
    "CHECKPOINT_ARTIFACT",
    "CHECKPOINT_PATH",
    "LEGACY_SHA256_TAG_PREFIX",
    "MANIFEST_PATH",
    "MANIFEST_TAG",
    "checkpoint_entries",
    "read_manifest",
    "recorded_hashes",
    "tree_hashes",
    "verify_checkpoint",
    "verify_files",
    "write_manifest",
]

CHECKPOINT_ARTIFACT = "checkpoint"
CHECKPOINT_PATH = f"artifacts/{CHECKPOINT_ARTIFACT}"
"""Where the checkpoint directory lies inside a logged model."""
MANIFEST_PATH = "integrity/manifest.json"
"""Where the manifest (path -> SHA-256 of every other model file) lies inside a logged model."""
MANIFEST_TAG = "integrity.manifest_sha256"
"""The version tag holding the SHA-256 of the manifest's bytes."""
LEGACY_SHA256_TAG_PREFIX = "sha256."
"""Versions registered before the manifest: one tag ``sha256.<path>`` per model file."""
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def verify_files(root: Path, expected: Mapping[str, str]) -> None:
    """Check each file ``root / <relative path>`` against its expected SHA-256; ``IntegrityError`` otherwise.

    ``expected`` maps relative paths (POSIX separators) to hex digests and must not be empty. Files under
    ``root`` that ``expected`` does not name are not checked (nothing here loads them).
    """
    root = Path(root)
    if not expected:
        msg = f"no SHA-256 to check the files under {root} against: refusing to load them"
        raise IntegrityError(msg)
    for name, digest in sorted(expected.items()):
        path = root / name
        if not path.is_file():
            msg = f"{name} is missing from {root} (expected SHA-256 {digest})"
            raise IntegrityError(msg)
        actual = file_digest(path)
        if actual != digest:
            msg = f"{name} in {root} has SHA-256 {actual}, but {digest} was recorded at registration"
            raise IntegrityError(msg)


def verify_checkpoint(directory: Path, expected: Mapping[str, str]) -> None:
    """Check a checkpoint directory's files against ``expected`` (file name -> SHA-256).

    Every file of :data:`CHECKPOINT_FILES` must be named in ``expected`` and match; ``IntegrityError`` names
    the first file that is missing or differs.
    """
    unlisted = [name for name in CHECKPOINT_FILES if name not in expected]
    if unlisted:
        msg = f"no recorded SHA-256 for {unlisted} of checkpoint {directory}: refusing to load it"
        raise IntegrityError(msg)
    verify_files(Path(directory), expected)


def tree_hashes(root: Path) -> dict[str, str]:
    """The SHA-256 of every file under ``root``, keyed by its POSIX path relative to ``root``."""
    return {
        path.relative_to(root).as_posix(): file_digest(path)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def write_manifest(root: Path) -> str:
    """Write :data:`MANIFEST_PATH` under ``root``, listing every other file's SHA-256; the manifest's SHA-256.

    The returned digest is the value of the version tag :data:`MANIFEST_TAG`.
    """
    root = Path(root)
    hashes = {name: digest for name, digest in tree_hashes(root).items() if name != MANIFEST_PATH}
    if not hashes:
        msg = f"no files under {root} to write a manifest for"
        raise IntegrityError(msg)
    payload = (json.dumps(hashes, indent=2, sort_keys=True) + "\n").encode()
    path = root / MANIFEST_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return hashlib.sha256(payload).hexdigest()


def read_manifest(path: Path, expected_sha256: str) -> dict[str, str]:
    """The manifest at ``path`` (model path -> SHA-256) after checking its own SHA-256 is ``expected_sha256``.

    ``IntegrityError`` when it is missing, differs from the tag, or is not a non-empty object of relative
    paths to hex SHA-256 digests; it is parsed only after its digest matched.
    """
    path = Path(path)
    if not path.is_file():
        msg = f"{MANIFEST_PATH} is missing (expected SHA-256 {expected_sha256}): refusing to load the model"
        raise IntegrityError(msg)
    payload = path.read_bytes()
    actual = hashlib.sha256(payload).hexdigest()
    if actual != expected_sha256:
        msg = (
            f"{MANIFEST_PATH} has SHA-256 {actual}, but the version's {MANIFEST_TAG} tag records "
            f"{expected_sha256}: refusing to load the model"
        )
        raise IntegrityError(msg)
    try:
        hashes = json.loads(payload)
    except ValueError as error:
        msg = f"{MANIFEST_PATH} is not JSON: {error}"
        raise IntegrityError(msg) from error
    if not isinstance(hashes, dict) or not hashes:
        msg = f"{MANIFEST_PATH} must be a non-empty object of path -> SHA-256"
        raise IntegrityError(msg)
    for name, digest in hashes.items():
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts or name in ("", MANIFEST_PATH):
            msg = f"{MANIFEST_PATH} names {name!r}, not a file of the model"
            raise IntegrityError(msg)
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            msg = f"{MANIFEST_PATH} holds {digest!r} for {name}, not a SHA-256"
            raise IntegrityError(msg)
    return hashes


def recorded_hashes(tags: Mapping[str, str], manifest: Path | None) -> dict[str, str]:
    """Every model file's path -> SHA-256 recorded at registration of the version with ``tags``.

    With a :data:`MANIFEST_TAG` tag: the manifest at ``manifest`` (a downloaded copy of the model's
    :data:`MANIFEST_PATH`; None or absent: ``IntegrityError``) checked against the tag by
    :func:`read_manifest`. Without one (a version registered before the manifest): its legacy ``sha256.*``
    tags, empty when it has none (which :func:`verify_files` refuses).
    """
    expected = tags.get(MANIFEST_TAG)
    if expected is not None:
        if manifest is None:
            msg = f"{MANIFEST_PATH} is missing (expected SHA-256 {expected}): refusing to load the model"
            raise IntegrityError(msg)
        return read_manifest(manifest, expected)
    prefix = LEGACY_SHA256_TAG_PREFIX
    return {key[len(prefix) :]: value for key, value in tags.items() if key.startswith(prefix)}


def checkpoint_entries(hashes: Mapping[str, str]) -> dict[str, str]:
    """The checkpoint's file name -> SHA-256 among a model's recorded hashes (``artifacts/checkpoint/<file>``)."""
    prefix = f"{CHECKPOINT_PATH}/"
    return {name[len(prefix) :]: digest for name, digest in hashes.items() if name.startswith(prefix)}
