"""Cache keys for deterministic data steps: the task, the code that computes it, and a digest of its inputs.

A retried or repeated flow run with the same inputs and code reuses the stored result instead of recomputing it.
Frames are digested by content (``core.digest.frame_digest``), not by pickling them.
"""

import dataclasses
import hashlib
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from prefect.context import TaskRunContext
from pydantic import BaseModel

from core.digest import frame_digest, model_digest, value_digest

__all__ = ["CACHE_EXPIRATION", "code_version", "input_digest_key"]

CACHE_EXPIRATION = timedelta(days=7)
_SOURCE_PACKAGES = ("core", "market", "validation", "stairways", "envs", "controllers", "training", "tasks")


@lru_cache(maxsize=1)
def code_version() -> str:
    """SHA-256 over the project's source files, so a code change invalidates cached results."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for package in _SOURCE_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _digest(value: Any) -> str:
    if isinstance(value, pl.DataFrame):
        return frame_digest(value)
    if isinstance(value, BaseModel):
        return model_digest(value)
    if isinstance(value, np.ndarray):
        return hashlib.sha256(
            str((value.dtype, value.shape)).encode() + np.ascontiguousarray(value).tobytes()
        ).hexdigest()
    if isinstance(value, Path):
        return value_digest(str(value))
    if isinstance(value, list | tuple):
        return value_digest([_digest(item) for item in value])
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return value_digest(
            {field.name: _digest(getattr(value, field.name)) for field in dataclasses.fields(value)}
        )
    return value_digest(value)


def input_digest_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Prefect ``cache_key_fn``: task name + code version + content digest of every parameter."""
    parts = [context.task.name, code_version()]
    parts.extend(f"{name}={_digest(value)}" for name, value in sorted(parameters.items()))
    return value_digest(parts)
