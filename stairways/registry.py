"""The MLflow model registry: candidates as pyfunc model versions, registration and reading (warm start, serving).

**One registered model** (configurable name) holds every candidate as a model version. A version's source is
an MLflow 3 logged model (linked to the flow's parent run) in the pyfunc format:
:class:`~stairways.agent_pyfunc.AgentPyfunc` with the training checkpoint bundled as the artifact
``checkpoint`` (at :data:`~stairways.integrity.CHECKPOINT_PATH` inside the model: ``model.zip``,
``vecnormalize.npz``, ``controller.json``, ``meta.json``), a signature (input: float32 tensor
``(-1, observation size)``, the observation features then the two positions, named in the model's metadata;
output: int64 actions ``(-1,)``) and an input example. ``mlflow.pyfunc.load_model("models:/<name>@champion")
.predict(observations)`` returns the deterministic actions of the checkpoint's policy.

**Version tags** (all strings): ``gate.verdict`` (``passed``/``failed``), ``gate.reason``, every gate metric
(``GateDecision.metric_tags()``: ``gate.<scenario>.<criterion>``), ``parent_run_id``, ``data_digest``,
``checkpoint_uri`` (the artifact URI of the bundled checkpoint directory, what :func:`champion_checkpoint`
downloads) and ``sha256.<path>``: the SHA-256 of every file of the logged model, ``<path>`` relative to the
model's root (``sha256.artifacts/checkpoint/model.zip``, ``sha256.agent_model.py``, ``sha256.MLmodel``). The
pyfunc is MLflow models-from-code (``stairways/agent_model.py`` is saved into the model): loading a version
unpickles nothing of ours.

**Integrity** (:mod:`stairways.integrity`): no file is loaded before its SHA-256 is checked against the
version tags: :func:`champion_checkpoint` checks the downloaded checkpoint, :func:`load_registered_model`
checks every downloaded model file before ``mlflow.pyfunc.load_model``, and the pyfunc's ``load_context``
checks the checkpoint files against the hashes stored in the model's ``model_config`` at registration. A
mismatch or a missing file raises :class:`~core.errors.IntegrityError` naming the file.

**Promotion** lives in :mod:`stairways.promotion`: a version is replayed from the registry before any
alias moves, and the aliases move under a lock, compare-and-set. A failing candidate keeps its version and
tags and gets no alias. **Rollback** lives in :mod:`stairways.rollback`.
"""

import importlib.metadata
import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.entities import LoggedModel, LoggedModelOutput
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.pyfunc import PyFuncModel
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, DataType, Schema, TensorSpec

from core.digest import file_digest
from core.errors import IntegrityError, RegistryError
from core.spec import ACTION_COLUMN, ACTION_MEANINGS, MEANING_COLUMN, POSITION_COUNT
from stairways.agent_pyfunc import agent_symbols
from stairways.integrity import (
    CHECKPOINT_ARTIFACT,
    CHECKPOINT_PATH,
    SHA256_TAG_PREFIX,
    checkpoint_hashes,
    model_hashes,
    tree_hashes,
    verify_checkpoint,
    verify_files,
)
from stairways.promotion import ABSENT_CODES, alias_version, model_version
from training.checkpoints import CHECKPOINT_FILES, META_FILE, check_warm_start
from validation.gate_decision import GateDecision

__all__ = [
    "CHAMPION_ALIAS",
    "CHECKPOINT_TAG",
    "MODEL_CODE_FILE",
    "PREVIOUS_CHAMPION_ALIAS",
    "VERDICT_TAG",
    "RegisteredCandidate",
    "WarmStart",
    "champion_checkpoint",
    "current_champion",
    "download_verified",
    "load_registered_model",
    "register_candidate",
    "resolve_version",
]

CHAMPION_ALIAS = "champion"
PREVIOUS_CHAMPION_ALIAS = "previous-champion"
CHECKPOINT_TAG = "checkpoint_uri"
VERDICT_TAG = "gate.verdict"
REASON_TAG = "gate.reason"
PARENT_RUN_TAG = "parent_run_id"
DATA_DIGEST_TAG = "data_digest"
LOGGED_MODEL_NAME = "agent"
MODEL_CODE_FILE = Path(__file__).with_name("agent_model.py")
"""The models-from-code file that defines the pyfunc of every version."""
_MAX_REASON = 4000
_REQUIREMENTS = ("mlflow", "stable-baselines3", "torch", "gymnasium", "numpy", "pydantic", "cloudpickle")


# --------------------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class WarmStart:
    """The champion checkpoint to start cycle 1 from (None: start fresh) and why."""

    checkpoint: Path | None
    reason: str
    version: str | None = None


@dataclass(frozen=True)
class RegisteredCandidate:
    """A candidate registered as a model version."""

    model_name: str
    version: str
    model_uri: str
    """``models:/<name>/<version>``."""
    model_id: str
    """The MLflow logged model behind the version."""
    checkpoint_uri: str
    tags: dict[str, str]


# --------------------------------------------------------------------------------------------------------
# Registration


def _requirements() -> list[str]:
    pins = []
    for distribution in _REQUIREMENTS:
        try:
            pins.append(f"{distribution}=={importlib.metadata.version(distribution)}")
        except importlib.metadata.PackageNotFoundError:
            pins.append(distribution)
    return pins


def _checkpoint_meta(checkpoint: Path, observation_names: Sequence[str]) -> dict[str, Any]:
    """The checkpoint's meta after checking it is complete, self-consistent and fits ``observation_names``."""
    try:
        meta = json.loads((checkpoint / META_FILE).read_text())
        size = int(meta["observation_shape"][0])
        action_count = int(meta["action_count"])
    except (OSError, ValueError, KeyError, TypeError, IndexError) as error:
        msg = f"checkpoint {checkpoint} has no readable {META_FILE}: {error}"
        raise ValueError(msg) from error
    names = list(observation_names)
    if len(names) != size:
        msg = f"observation_names has {len(names)} names, the checkpoint observes {size} values"
        raise ValueError(msg)
    problem = check_warm_start(
        checkpoint,
        observation_size=size,
        action_count=action_count,
        feature_names=names[: size - POSITION_COUNT],
    )
    if problem is not None:
        msg = f"checkpoint {checkpoint} cannot be registered: {problem}"
        raise ValueError(msg)
    return meta


def _client(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _ensure_registered_model(client: MlflowClient, model_name: str) -> None:
    try:
        client.get_registered_model(model_name)
    except MlflowException as error:
        if error.error_code not in ABSENT_CODES:
            raise
        try:
            client.create_registered_model(
                model_name, description="The stairways trading agent: one version per nightly candidate."
            )
        except MlflowException as race:
            if race.error_code != "RESOURCE_ALREADY_EXISTS":
                raise


def _log_pyfunc(
    client: MlflowClient,
    logged: LoggedModel,
    *,
    checkpoint: Path,
    meta: Mapping[str, Any],
    observation_names: Sequence[str],
) -> dict[str, str]:
    """Save the pyfunc model with the checkpoint, upload it as ``logged``'s artifacts; the files' SHA-256."""
    size = int(meta["observation_shape"][0])
    first, second = agent_symbols(meta)
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, size))]),
        outputs=Schema(
            [
                ColSpec(DataType.long, ACTION_COLUMN),
                ColSpec(DataType.string, MEANING_COLUMN),
                ColSpec(DataType.string, first),
                ColSpec(DataType.string, second),
            ]
        ),
    )
    with tempfile.TemporaryDirectory(prefix="stairways-model-") as folder:
        staging = Path(folder) / CHECKPOINT_ARTIFACT
        staging.mkdir()
        for name in CHECKPOINT_FILES:
            shutil.copy2(checkpoint / name, staging / name)
        checkpoint_sha256 = {name: file_digest(staging / name) for name in CHECKPOINT_FILES}
        local = Path(folder) / "model"
        mlflow.pyfunc.save_model(
            path=str(local),
            # Models-from-code: the pyfunc is this code file, not a pickle (see stairways/agent_model.py).
            python_model=str(MODEL_CODE_FILE),
            artifacts={CHECKPOINT_ARTIFACT: str(staging)},
            signature=signature,
            input_example=np.zeros((1, size), dtype=np.float32),
            pip_requirements=_requirements(),
            model_config={"files_sha256": checkpoint_sha256},
            metadata={
                "observation_names": list(observation_names),
                "symbols": list(meta.get("symbols", [])),
                "action_meanings": list(ACTION_MEANINGS),
                "checkpoint_cycle": meta.get("cycle"),
                "num_timesteps": meta.get("num_timesteps"),
            },
            mlflow_model=Model(
                artifact_path=logged.artifact_location,
                model_uuid=logged.model_id,
                run_id=logged.source_run_id,
                model_id=logged.model_id,
            ),
        )
        hashes = tree_hashes(local)
        missing = [name for name in CHECKPOINT_FILES if f"{CHECKPOINT_PATH}/{name}" not in hashes]
        if missing:
            msg = f"the saved model does not hold the checkpoint at {CHECKPOINT_PATH}: {missing} missing"
            raise RegistryError(msg)
        client.log_model_artifacts(logged.model_id, str(local))
    return hashes


def register_candidate(
    *,
    tracking_uri: str,
    model_name: str,
    run_id: str,
    checkpoint: Path,
    decision: GateDecision,
    data_digest: str,
    observation_names: Sequence[str],
) -> RegisteredCandidate:
    """Log ``checkpoint`` as a pyfunc model linked to run ``run_id`` and register it as a new version.

    The version carries the gate's verdict and metrics, the run id, ``data_digest``, the SHA-256 of every
    model file and ``checkpoint_uri`` (see the module docstring); it gets no alias (see :func:`stairways.promotion.promote_verified`).
    ``observation_names`` names the observation columns: the checkpoint's features in order, then the two
    positions. Raises ``ValueError`` for an unusable checkpoint or names that do not fit it.
    """
    checkpoint = Path(checkpoint)
    meta = _checkpoint_meta(checkpoint, observation_names)
    client = _client(tracking_uri)
    run = client.get_run(run_id)
    _ensure_registered_model(client, model_name)
    logged = client.create_logged_model(
        run.info.experiment_id,
        name=LOGGED_MODEL_NAME,
        source_run_id=run_id,
        model_type="stairways-agent",
        tags={VERDICT_TAG: "passed" if decision.passed else "failed", DATA_DIGEST_TAG: data_digest},
    )
    try:
        hashes = _log_pyfunc(
            client, logged, checkpoint=checkpoint, meta=meta, observation_names=observation_names
        )
    except Exception:
        client.finalize_logged_model(logged.model_id, "FAILED")
        raise
    client.finalize_logged_model(logged.model_id, "READY")
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])

    checkpoint_uri = f"{logged.artifact_location.rstrip('/')}/{CHECKPOINT_PATH}"
    tags = {
        VERDICT_TAG: "passed" if decision.passed else "failed",
        REASON_TAG: decision.reason[:_MAX_REASON],
        **decision.metric_tags(),
        PARENT_RUN_TAG: run_id,
        DATA_DIGEST_TAG: data_digest,
        CHECKPOINT_TAG: checkpoint_uri,
        **{f"{SHA256_TAG_PREFIX}{path}": digest for path, digest in hashes.items()},
    }
    # The source is the logged model's storage location, not ``models:/<model_id>``: the SQL registry store
    # resolves the latter through the global tracking URI, not this client's.
    version = client.create_model_version(
        model_name,
        source=logged.artifact_location,
        run_id=run_id,
        tags=tags,
        model_id=logged.model_id,
        description=f"gate {'passed' if decision.passed else 'failed'}: {decision.reason[:500]}",
    )
    return RegisteredCandidate(
        model_name=model_name,
        version=str(version.version),
        model_uri=f"models:/{model_name}/{version.version}",
        model_id=logged.model_id,
        checkpoint_uri=checkpoint_uri,
        tags=tags,
    )


# --------------------------------------------------------------------------------------------------------
# Reading the registry


def current_champion(*, tracking_uri: str, model_name: str) -> str | None:
    """The version holding ``champion`` (None when there is none, or no such registered model)."""
    version = alias_version(_client(tracking_uri), model_name, CHAMPION_ALIAS)
    return None if version is None else str(version.version)


def resolve_version(model_uri: str, *, tracking_uri: str) -> ModelVersion:
    """The model version a ``models:/<name>/<version>`` or ``models:/<name>@<alias>`` URI names."""
    prefix = "models:/"
    body = model_uri[len(prefix) :] if model_uri.startswith(prefix) else ""
    client = _client(tracking_uri)
    if "@" in body and "/" not in body:
        name, alias = body.split("@", 1)
        version = alias_version(client, name, alias)
        if version is None:
            msg = f"registered model '{name}' has no alias '{alias}'"
            raise RegistryError(msg)
        return version
    name, separator, number = body.partition("/")
    if not name or not separator or not number.isdigit():
        msg = f"expected models:/<name>/<version> or models:/<name>@<alias>, got {model_uri!r}"
        raise ValueError(msg)
    return model_version(client, name, number)


def load_registered_model(
    model_uri: str, *, tracking_uri: str, destination: Path
) -> tuple[PyFuncModel, ModelVersion]:
    """Download a registered version into ``destination``, verify every file, then load it as a pyfunc.

    ``model_uri`` is ``models:/<name>@<alias>`` or ``models:/<name>/<version>``; an alias is resolved once,
    and that version's files are downloaded and checked against its ``sha256.*`` tags (``IntegrityError``
    on any difference) before ``mlflow.pyfunc.load_model`` reads them. Returns the model and the version.
    """
    local, version = download_verified(model_uri, tracking_uri=tracking_uri, destination=destination)
    return mlflow.pyfunc.load_model(str(local)), version


def download_verified(model_uri: str, *, tracking_uri: str, destination: Path) -> tuple[Path, ModelVersion]:
    """Download a registered version's files into ``destination`` and check every one against its tags.

    Reads nothing it downloads: ``IntegrityError`` on a missing, extra-changed or tampered file.
    """
    version = resolve_version(model_uri, tracking_uri=tracking_uri)
    expected = model_hashes(version.tags)
    # The version's storage location, not a models:/ URI: MLflow resolves those through the global registry.
    location = _client(tracking_uri).get_model_version_download_uri(version.name, version.version)
    Path(destination).mkdir(parents=True, exist_ok=True)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=location, dst_path=str(destination), tracking_uri=tracking_uri
    )
    verify_files(Path(local), expected)
    return Path(local), version


def champion_checkpoint(*, tracking_uri: str, model_name: str, destination: Path) -> WarmStart:
    """Download the ``champion`` version's checkpoint into ``destination``; None with a reason when absent.

    The downloaded files are checked against the version's ``sha256.*`` tags before anyone loads them: a
    mismatch, or a champion without those tags, raises ``IntegrityError``.
    """
    client = _client(tracking_uri)
    version = alias_version(client, model_name, CHAMPION_ALIAS)
    if version is None:
        return WarmStart(None, f"no '{CHAMPION_ALIAS}' alias on registered model '{model_name}'")
    uri = version.tags.get(CHECKPOINT_TAG)
    if not uri:
        reason = f"champion version {version.version} of '{model_name}' has no {CHECKPOINT_TAG} tag"
        return WarmStart(None, reason, str(version.version))
    destination.mkdir(parents=True, exist_ok=True)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=uri, dst_path=str(destination), tracking_uri=tracking_uri
    )
    expected = checkpoint_hashes(version.tags)
    try:
        verify_checkpoint(Path(local), expected)
    except IntegrityError as error:
        msg = f"champion version {version.version} of '{model_name}': {error}"
        raise IntegrityError(msg) from error
    return WarmStart(
        Path(local), f"champion version {version.version} of '{model_name}'", str(version.version)
    )
