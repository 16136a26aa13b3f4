"""The MLflow model registry: candidates as pyfunc model versions, registration and reading (warm start, serving).

**One registered model** (configurable name) holds every candidate as a model version. A version's source is
an MLflow 3 logged model (linked to the flow's parent run) in the pyfunc format:
:class:`~stairways.agent_pyfunc.AgentPyfunc` with the training checkpoint bundled as the artifact
``checkpoint`` (at :data:`~stairways.integrity.CHECKPOINT_PATH` inside the model: ``model.zip``,
``vecnormalize.npz``, ``controller.json``, ``meta.json``), a signature (input: float32 tensor
``(-1, observation size)``, the observation features then the two positions, named in the model's metadata;
output: int64 actions ``(-1,)``) and an input example. ``mlflow.pyfunc.load_model("models:/<name>@champion")
.predict(observations)`` returns the deterministic actions of the checkpoint's policy.

**Version tags** (all strings, eleven, searchable in the versions table): ``gate.verdict`` (``passed``/
``failed``), ``gate.reason`` (the gate's reason, at most 300 characters), ``gate.champion`` (``none``,
``comparable``, ``incomparable`` or ``incomparable, replaced``), three key figures of the test window
(:meth:`~validation.gate_decision.GateDecision.summary_tags`: ``gate.test_sharpe``,
``gate.champion_margin_pct`` (mean per-session return over the champion's, percent) and
``gate.deflated_sharpe``), ``parent_run_id``, ``run_url`` (the run's page in the MLflow UI on a tracking
server, ``runs:/<id>`` on a local store), ``data_digest``, ``checkpoint_uri`` (the artifact URI of the
bundled checkpoint directory, what :func:`champion_checkpoint` downloads) and ``integrity.manifest_sha256``
(the SHA-256 of the model's integrity manifest, below). The pyfunc is MLflow models-from-code
(``stairways/agent_model.py`` is saved into the model): loading a version unpickles nothing of ours.

**Gate record**: every criterion (scenario, criterion, metric, measured value, comparison, threshold, its
own verdict and reason) and the statistics (the champion compared against, the candidates compared, the
paired intervals with their session counts, the deflated Sharpe ratio with its observations) are the JSON
:data:`CRITERIA_PATH` (``gate/criteria.json``) in the logged model's artifacts, linked from the version page
(:meth:`~validation.gate_decision.GateDecision.criteria_record`).

**Integrity** (:mod:`stairways.integrity`): the model holds the manifest ``integrity/manifest.json`` (path ->
SHA-256 of every other file of the model, ``gate/criteria.json`` included), and no file is loaded before it
is checked: the manifest against the ``integrity.manifest_sha256`` tag, then each file against the
manifest. :func:`champion_checkpoint` checks the downloaded checkpoint, :func:`load_registered_model` checks
every downloaded model file before ``mlflow.pyfunc.load_model``, and the pyfunc's ``load_context`` checks
the checkpoint files against the hashes stored in the model's ``model_config`` at registration. A mismatch
or a missing file raises :class:`~core.errors.IntegrityError` naming the file. Versions registered before the
manifest (one ``sha256.<path>`` tag per file) verify against those tags.

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
from pathlib import Path, PurePosixPath
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
    MANIFEST_PATH,
    MANIFEST_TAG,
    checkpoint_entries,
    recorded_hashes,
    tree_hashes,
    verify_checkpoint,
    verify_files,
    write_manifest,
)
from stairways.promotion import ABSENT_CODES, alias_version, model_version
from stairways.tracking import run_url
from training.checkpoints import CHECKPOINT_FILES, META_FILE, check_warm_start
from validation.gate_decision import REASON_TAG, VERDICT_TAG, GateDecision

__all__ = [
    "CHAMPION_ALIAS",
    "CHECKPOINT_TAG",
    "CRITERIA_PATH",
    "MODEL_CODE_FILE",
    "PREVIOUS_CHAMPION_ALIAS",
    "REASON_TAG",
    "RUN_URL_TAG",
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
PARENT_RUN_TAG = "parent_run_id"
RUN_URL_TAG = "run_url"
DATA_DIGEST_TAG = "data_digest"
CRITERIA_PATH = "gate/criteria.json"
"""Where the gate record (every criterion, the statistics) lies inside a logged model."""
LOGGED_MODEL_NAME = "agent"
MODEL_CODE_FILE = Path(__file__).with_name("agent_model.py")
"""The models-from-code file that defines the pyfunc of every version."""
_MAX_REASON = 300
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
    criteria_uri: str
    """The artifact URI of the version's gate record (:data:`CRITERIA_PATH` in its logged model)."""


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
    gate_record: Mapping[str, Any],
) -> str:
    """Save the pyfunc model with the checkpoint and ``gate_record`` (at :data:`CRITERIA_PATH`), write its
    integrity manifest, upload it all as ``logged``'s artifacts; the manifest's SHA-256."""
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
        record = local / CRITERIA_PATH
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(gate_record, indent=2, allow_nan=False, default=str) + "\n")
        hashes = tree_hashes(local)
        missing = [name for name in CHECKPOINT_FILES if f"{CHECKPOINT_PATH}/{name}" not in hashes]
        if missing:
            msg = f"the saved model does not hold the checkpoint at {CHECKPOINT_PATH}: {missing} missing"
            raise RegistryError(msg)
        manifest_sha256 = write_manifest(local)
        client.log_model_artifacts(logged.model_id, str(local))
    return manifest_sha256


def register_candidate(
    *,
    tracking_uri: str,
    model_name: str,
    run_id: str,
    checkpoint: Path,
    decision: GateDecision,
    data_digest: str,
    observation_names: Sequence[str],
    champion_version: str | None = None,
    scenario_episodes: Mapping[str, float] | None = None,
) -> RegisteredCandidate:
    """Log ``checkpoint`` as a pyfunc model linked to run ``run_id`` and register it as a new version.

    The version carries eleven tags: the gate's verdict, reason, champion case and three key figures, the
    run id and its link, ``data_digest``, ``checkpoint_uri`` and the manifest's SHA-256; every criterion and
    the statistics are :data:`CRITERIA_PATH` in the model (see the module docstring). It gets no alias (see
    :func:`stairways.promotion.promote_verified`). ``observation_names`` names the observation columns: the
    checkpoint's features in order, then the two positions. ``champion_version`` (the version the gate
    compared against) and ``scenario_episodes`` (scenario key -> episode count) complete the gate record
    when the caller knows them. Raises ``ValueError`` for an unusable checkpoint or names that do not fit it.
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
    gate_record = decision.criteria_record(
        champion_version=champion_version, scenario_episodes=scenario_episodes
    )
    try:
        manifest_sha256 = _log_pyfunc(
            client,
            logged,
            checkpoint=checkpoint,
            meta=meta,
            observation_names=observation_names,
            gate_record=gate_record,
        )
    except Exception:
        client.finalize_logged_model(logged.model_id, "FAILED")
        raise
    client.finalize_logged_model(logged.model_id, "READY")
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])

    checkpoint_uri = f"{logged.artifact_location.rstrip('/')}/{CHECKPOINT_PATH}"
    tags = {
        **decision.summary_tags(reason_chars=_MAX_REASON),
        PARENT_RUN_TAG: run_id,
        RUN_URL_TAG: run_url(tracking_uri, run.info.experiment_id, run_id),
        DATA_DIGEST_TAG: data_digest,
        CHECKPOINT_TAG: checkpoint_uri,
        MANIFEST_TAG: manifest_sha256,
    }
    # The source is the logged model's storage location, not ``models:/<model_id>``: the SQL registry store
    # resolves the latter through the global tracking URI, not this client's.
    version = client.create_model_version(
        model_name,
        source=logged.artifact_location,
        run_id=run_id,
        tags=tags,
        model_id=logged.model_id,
        description=(
            f"gate {'passed' if decision.passed else 'failed'}: {decision.reason[:500]} (every criterion: "
            f"{CRITERIA_PATH} in the source model's artifacts)"
        ),
    )
    return RegisteredCandidate(
        model_name=model_name,
        version=str(version.version),
        model_uri=f"models:/{model_name}/{version.version}",
        model_id=logged.model_id,
        checkpoint_uri=checkpoint_uri,
        tags=tags,
        criteria_uri=f"{logged.artifact_location.rstrip('/')}/{CRITERIA_PATH}",
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
    and that version's files are downloaded and checked (:func:`download_verified`: the manifest against the
    version's ``integrity.manifest_sha256`` tag, every file against the manifest; ``IntegrityError`` on any
    difference) before ``mlflow.pyfunc.load_model`` reads them. Returns the model and the version.
    """
    local, version = download_verified(model_uri, tracking_uri=tracking_uri, destination=destination)
    return mlflow.pyfunc.load_model(str(local)), version


def download_verified(model_uri: str, *, tracking_uri: str, destination: Path) -> tuple[Path, ModelVersion]:
    """Download a registered version's files into ``destination`` and check every one against its record.

    The model's manifest must match the version's ``integrity.manifest_sha256`` tag and every file the
    manifest names must match it (a version registered before the manifest: its ``sha256.*`` tags). Reads
    nothing it downloads: ``IntegrityError`` on a missing or tampered file or manifest.
    """
    version = resolve_version(model_uri, tracking_uri=tracking_uri)
    # The version's storage location, not a models:/ URI: MLflow resolves those through the global registry.
    location = _client(tracking_uri).get_model_version_download_uri(version.name, version.version)
    Path(destination).mkdir(parents=True, exist_ok=True)
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=str(destination), tracking_uri=tracking_uri
        )
    )
    verify_files(local, recorded_hashes(version.tags, local / MANIFEST_PATH))
    return local, version


def _download_manifest(
    client: MlflowClient, version: ModelVersion, *, tracking_uri: str, destination: Path
) -> Path | None:
    """The version's manifest downloaded into ``destination``; None when the version or its model has none."""
    if MANIFEST_TAG not in version.tags:
        return None
    location = client.get_model_version_download_uri(version.name, version.version).rstrip("/")
    manifest = PurePosixPath(MANIFEST_PATH)
    listed = mlflow.artifacts.list_artifacts(
        artifact_uri=f"{location}/{manifest.parent}", tracking_uri=tracking_uri
    )
    if not any(not item.is_dir and PurePosixPath(item.path).name == manifest.name for item in listed):
        return None
    return Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"{location}/{MANIFEST_PATH}", dst_path=str(destination), tracking_uri=tracking_uri
        )
    )


def champion_checkpoint(*, tracking_uri: str, model_name: str, destination: Path) -> WarmStart:
    """Download the ``champion`` version's checkpoint into ``destination``; None with a reason when absent.

    The downloaded files are checked before anyone loads them: the model's manifest against the version's
    ``integrity.manifest_sha256`` tag, then each checkpoint file against the manifest (a version registered
    before the manifest: against its ``sha256.*`` tags). A mismatch, a missing manifest or file, or a champion
    with no recorded SHA-256 raises ``IntegrityError``.
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
    with tempfile.TemporaryDirectory(prefix="stairways-manifest-") as folder:
        manifest = _download_manifest(client, version, tracking_uri=tracking_uri, destination=Path(folder))
        try:
            expected = checkpoint_entries(recorded_hashes(version.tags, manifest))
        except IntegrityError as error:
            msg = f"champion version {version.version} of '{model_name}': {error}"
            raise IntegrityError(msg) from error
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=uri, dst_path=str(destination), tracking_uri=tracking_uri
    )
    try:
        verify_checkpoint(Path(local), expected)
    except IntegrityError as error:
        msg = f"champion version {version.version} of '{model_name}': {error}"
        raise IntegrityError(msg) from error
    return WarmStart(
        Path(local), f"champion version {version.version} of '{model_name}'", str(version.version)
    )
