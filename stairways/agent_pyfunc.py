"""The trading agent as an MLflow pyfunc: :class:`AgentPyfunc`, raw observations in, int64 actions out.

Every registered version is this class, built by MLflow models-from-code from ``stairways/agent_model.py``
(saved into the model; nothing of ours is unpickled). The training checkpoint is bundled as the artifact
:data:`~stairways.integrity.CHECKPOINT_ARTIFACT`; ``load_context`` verifies it against the SHA-256 stored in
the model's ``model_config`` at registration (:mod:`stairways.integrity`) before reading any of its files.
"""

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from mlflow.pyfunc import PythonModel, PythonModelContext

from core.errors import IntegrityError, RegistryError
from stairways.integrity import CHECKPOINT_ARTIFACT, verify_checkpoint
from training.checkpoints import LoadedPolicy, load_checkpoint

__all__ = ["AgentPyfunc"]


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
