"""The SHA-256 of a registered version's files: where they lie, how they are tagged, how they are checked.

A version's files are the files of its logged pyfunc model; the training checkpoint is bundled as the
artifact :data:`CHECKPOINT_ARTIFACT`, at :data:`CHECKPOINT_PATH` inside the model. At registration every
file's SHA-256 becomes the version tag ``sha256.<path>`` (:data:`SHA256_TAG_PREFIX`, ``<path>`` relative to
the model's root: ``sha256.artifacts/checkpoint/model.zip``, ``sha256.agent_model.py``, ``sha256.MLmodel``).

SB3 files and the pyfunc wrapper contain pickles, so no file is loaded before its SHA-256 is checked:
:func:`stairways.registry.champion_checkpoint` checks the downloaded checkpoint,
:func:`stairways.registry.load_registered_model` checks every downloaded model file before
``mlflow.pyfunc.load_model``, and :meth:`stairways.agent_pyfunc.AgentPyfunc.load_context` checks the
checkpoint files against the hashes stored in the model's ``model_config`` at registration (the same values
as the tags; it cannot see the registry). A mismatch or a missing file raises
:class:`~core.errors.IntegrityError` naming the file.
"""

from collections.abc import Mapping
from pathlib import Path

from core.digest import file_digest
from core.errors import IntegrityError
from training.checkpoints import CHECKPOINT_FILES

__all__ = [
    "CHECKPOINT_ARTIFACT",
    "CHECKPOINT_PATH",
    "SHA256_TAG_PREFIX",
    "checkpoint_hashes",
    "model_hashes",
    "tree_hashes",
    "verify_checkpoint",
    "verify_files",
]

CHECKPOINT_ARTIFACT = "checkpoint"
CHECKPOINT_PATH = f"artifacts/{CHECKPOINT_ARTIFACT}"
"""Where the checkpoint directory lies inside a logged model."""
SHA256_TAG_PREFIX = "sha256."


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


def checkpoint_hashes(tags: Mapping[str, str]) -> dict[str, str]:
    """The checkpoint's file name -> SHA-256 from a version's ``sha256.artifacts/checkpoint/<file>`` tags."""
    prefix = f"{SHA256_TAG_PREFIX}{CHECKPOINT_PATH}/"
    return {key[len(prefix) :]: value for key, value in tags.items() if key.startswith(prefix)}


def model_hashes(tags: Mapping[str, str]) -> dict[str, str]:
    """Every model file's path (relative to the model's root) -> SHA-256 from a version's ``sha256.*`` tags."""
    return {
        key[len(SHA256_TAG_PREFIX) :]: value
        for key, value in tags.items()
        if key.startswith(SHA256_TAG_PREFIX)
    }


def tree_hashes(root: Path) -> dict[str, str]:
    """The SHA-256 of every file under ``root``, keyed by its POSIX path relative to ``root``."""
    return {
        path.relative_to(root).as_posix(): file_digest(path)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }
