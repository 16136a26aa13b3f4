"""The trading agent as an MLflow pyfunc: :class:`AgentPyfunc`, raw observations in, named actions out.

Every registered version is this class, built by MLflow models-from-code from ``stairways/agent_model.py``
(saved into the model; nothing of ours is unpickled). The training checkpoint is bundled as the artifact
:data:`~stairways.integrity.CHECKPOINT_ARTIFACT`; ``load_context`` verifies it against the SHA-256 stored in
the model's ``model_config`` at registration (:mod:`stairways.integrity`) before reading any of its files.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

from core.errors import IntegrityError, RegistryError
from core.spec import ACTION_COLUMN, POSITION_COUNT, action_columns
from stairways.integrity import CHECKPOINT_ARTIFACT, verify_checkpoint
from training.checkpoints import LoadedPolicy, load_checkpoint

__all__ = ["AgentPyfunc", "agent_symbols"]


class AgentPyfunc(PythonModel):
    """The trading agent as an MLflow pyfunc: raw observations in, deterministic actions with their names out.

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
    ) -> pd.DataFrame:
        """One row per observation (shape ``(n, observation size)``): the action index and its names.

        Columns: ``action`` (int64, 0..8), ``meaning`` (``"buy/hold"``) and one per symbol with that ticker's
        order (``sell``, ``hold`` or ``buy``): the served model answers ``{"action": 6, "meaning":
        "buy/sell", "NVDA": "buy", "MSFT": "sell"}`` per row.
        """
        # ``np.ndarray`` is a hint MLflow infers no schema from: the explicit signature alone applies.
        if self._policy is None:
            msg = "the agent model is not loaded: load it with mlflow.pyfunc.load_model"
            raise RegistryError(msg)
        actions = self._policy.predict(np.asarray(model_input, dtype=np.float32))
        frame = pd.DataFrame(action_columns(actions, agent_symbols(self._policy.meta)))
        return frame.astype({ACTION_COLUMN: np.int64})


def agent_symbols(meta: Mapping[str, Any]) -> tuple[str, str]:
    """The two tickers a checkpoint trades, in order (``ticker_0``/``ticker_1`` for one that does not say)."""
    symbols = list(meta.get("symbols") or [])
    if len(symbols) != POSITION_COUNT:
        return ("ticker_0", "ticker_1")
    return (str(symbols[0]), str(symbols[1]))
