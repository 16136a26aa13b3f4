"""The MLflow model registry: candidates as pyfunc model versions, promotion by alias, rollback, warm start.

**One registered model** (configurable name) holds every candidate as a model version. A version's source is
an MLflow 3 logged model (linked to the flow's parent run) in the pyfunc format: :class:`AgentPyfunc` with the
training checkpoint bundled as the artifact ``checkpoint`` (at :data:`CHECKPOINT_PATH` inside the model:
``model.zip``, ``vecnormalize.npz``, ``controller.json``, ``meta.json``), a signature (input: float32 tensor
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

**Integrity.** SB3 files and the pyfunc wrapper contain pickles, so no file is loaded before its SHA-256 is
checked against the version tags: :func:`champion_checkpoint` checks the downloaded checkpoint,
:func:`load_registered_model` checks every downloaded model file before ``mlflow.pyfunc.load_model``, and
:meth:`AgentPyfunc.load_context` checks the checkpoint files against the hashes stored in the model's
``model_config`` at registration (the same values as the tags; it cannot see the registry). A mismatch or a
missing file raises :class:`~core.errors.IntegrityError` naming the file.

**Promotion** lives in :mod:`stairways.promotion`: a version is replayed from the registry before any
alias moves, and the aliases move under a lock, compare-and-set. A failing candidate keeps its version and
tags and gets no alias.

**Rollback** (:func:`rollback`): needs a non-empty reason; the target's files are downloaded and checked
against its ``sha256.*`` tags first (a tampered version is refused); a version whose gate failed, or that
was never verified by a replay from the registry (``promotion.state``), needs ``force``; the move takes the promotion lock (after repairing interrupted promotions). ``champion`` moves
to the ``previous-champion`` version (or a named version); the demoted version is tagged ``rolled_back_at``, ``rollback_reason``, ``rolled_back_to``, the
restored one ``restored_at`` and ``restore_reason``. ``previous-champion`` then moves to the restored
version's own predecessor (its ``promoted_from`` tag) or is removed when it has none, so rolling back again
walks further back in history instead of returning to the version just demoted. Each event overwrites the
tags of the same name on a version: they record its latest promotion or rollback. Every rollback is also an
MLflow run of the experiment :data:`EVENTS_EXPERIMENT` (from, to, reason, forced).
"""

import importlib.metadata
import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.entities import LoggedModel, LoggedModelOutput
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.pyfunc import PyFuncModel, PythonModel, PythonModelContext
from mlflow.tracking import MlflowClient
from mlflow.types import Schema, TensorSpec

from core.digest import file_digest
from core.errors import ConfigError, GateRejected, IntegrityError, RegistryError
from core.spec import ACTION_MEANINGS, POSITION_COUNT
from stairways.promotion import (
    ABSENT_CODES,
    STATE_TAG,
    VERIFIED_STATES,
    alias_version,
    model_version,
    promotion_lock,
    recover_interrupted,
)
from training.checkpoints import (
    CHECKPOINT_FILES,
    CONTROLLER_FILE,
    META_FILE,
    MODEL_FILE,
    NORMALIZATION_FILE,
    LoadedPolicy,
    check_warm_start,
    load_checkpoint,
)
from validation.gate_decision import GateDecision

__all__ = [
    "CHAMPION_ALIAS",
    "CHECKPOINT_ARTIFACT",
    "CHECKPOINT_PATH",
    "CHECKPOINT_TAG",
    "PREVIOUS_CHAMPION_ALIAS",
    "SHA256_TAG_PREFIX",
    "VERDICT_TAG",
    "EVENTS_EXPERIMENT",
    "AgentPyfunc",
    "RegisteredCandidate",
    "RollbackRecord",
    "WarmStart",
    "champion_checkpoint",
    "checkpoint_hashes",
    "current_champion",
    "download_verified",
    "load_registered_model",
    "register_candidate",
    "resolve_version",
    "rollback",
    "verify_checkpoint",
    "verify_files",
]

CHAMPION_ALIAS = "champion"
PREVIOUS_CHAMPION_ALIAS = "previous-champion"
CHECKPOINT_TAG = "checkpoint_uri"
CHECKPOINT_ARTIFACT = "checkpoint"
CHECKPOINT_PATH = f"artifacts/{CHECKPOINT_ARTIFACT}"
"""Where the checkpoint directory lies inside a logged model."""
SHA256_TAG_PREFIX = "sha256."
VERDICT_TAG = "gate.verdict"
REASON_TAG = "gate.reason"
PARENT_RUN_TAG = "parent_run_id"
DATA_DIGEST_TAG = "data_digest"
PROMOTED_FROM_TAG = "promoted_from"
LOGGED_MODEL_NAME = "agent"
EVENTS_EXPERIMENT = "stairways-registry-events"
MODEL_CODE_FILE = Path(__file__).with_name("agent_model.py")
"""The models-from-code file that defines the pyfunc of every version."""
"""MLflow experiment holding one run per manual registry event (rollbacks)."""
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


# --------------------------------------------------------------------------------------------------------
# Hashes


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


def _model_hashes(tags: Mapping[str, str]) -> dict[str, str]:
    return {
        key[len(SHA256_TAG_PREFIX) :]: value
        for key, value in tags.items()
        if key.startswith(SHA256_TAG_PREFIX)
    }


def _tree_hashes(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): file_digest(path)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


# --------------------------------------------------------------------------------------------------------
# The pyfunc model


class AgentPyfunc(PythonModel):
    """The trading agent as an MLflow pyfunc: raw observations in, deterministic int64 actions out.

    ``load_context`` verifies the bundled checkpoint against the SHA-256 stored in ``model_config`` (key
    ``files_sha256``) before reading any of its files, then loads it with
    :func:`training.cycles.load_checkpoint`.
    """

    def __init__(self) -> None:
        self._policy: LoadedPolicy | None = None

    def load_context(self, context: PythonModelContext) -> None:
        """Verify and load the checkpoint artifact."""
        directory = Path(context.artifacts[CHECKPOINT_ARTIFACT])
        expected = (context.model_config or {}).get("files_sha256")
        if not isinstance(expected, Mapping):
            msg = f"the model's config holds no files_sha256: refusing to load checkpoint {directory}"
            raise IntegrityError(msg)
        verify_checkpoint(directory, expected)
        self._policy = load_checkpoint(directory)

    def predict(
        self, context: PythonModelContext, model_input: np.ndarray, params: dict[str, str] | None = None
    ) -> np.ndarray:
        """Actions (int64, shape ``(n,)``) for observations of shape ``(n, observation size)``."""
        # ``np.ndarray`` is a hint MLflow infers no schema from: the explicit signature alone applies.
        if self._policy is None:
            msg = "the agent model is not loaded: load it with mlflow.pyfunc.load_model"
            raise RegistryError(msg)
        return self._policy.predict(np.asarray(model_input, dtype=np.float32))


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


# --------------------------------------------------------------------------------------------------------
# Registration


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
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, size))]),
        outputs=Schema([TensorSpec(np.dtype(np.int64), (-1,))]),
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
        hashes = _tree_hashes(local)
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
    model file and ``checkpoint_uri`` (see the module docstring); it gets no alias (see :func:`promote`).
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
    expected = _model_hashes(version.tags)
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


# --------------------------------------------------------------------------------------------------------
# Promotion and rollback


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
