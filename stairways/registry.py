"""The MLflow model registry seen from training: where the current champion's checkpoint is.

Every registered version carries the tag ``checkpoint_uri``: the artifact URI of the training checkpoint it
was built from (model weights, normalization statistics, controller state and ``meta.json`` with the SHA-256
of each file).
"""

from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

__all__ = ["CHAMPION_ALIAS", "CHECKPOINT_TAG", "PREVIOUS_CHAMPION_ALIAS", "WarmStart", "champion_checkpoint"]

CHAMPION_ALIAS = "champion"
PREVIOUS_CHAMPION_ALIAS = "previous-champion"
CHECKPOINT_TAG = "checkpoint_uri"
_ABSENT = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}


@dataclass(frozen=True)
class WarmStart:
    """The champion checkpoint to start cycle 1 from (None: start fresh) and why."""

    checkpoint: Path | None
    reason: str
    version: str | None = None


def champion_checkpoint(*, tracking_uri: str, model_name: str, destination: Path) -> WarmStart:
    """Download the ``champion`` version's checkpoint into ``destination``; None with a reason when absent."""
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        version = client.get_model_version_by_alias(model_name, CHAMPION_ALIAS)
    except MlflowException as error:
        if error.error_code in _ABSENT:
            return WarmStart(None, f"no '{CHAMPION_ALIAS}' alias on registered model '{model_name}'")
        raise
    uri = version.tags.get(CHECKPOINT_TAG)
    if not uri:
        return WarmStart(
            None, f"champion version {version.version} of '{model_name}' has no {CHECKPOINT_TAG} tag", version.version
        )
    destination.mkdir(parents=True, exist_ok=True)
    local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(destination), tracking_uri=tracking_uri)
    return WarmStart(Path(local), f"champion version {version.version} of '{model_name}'", version.version)
