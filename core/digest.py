"""Content digests that are stable across processes and library versions (cache keys, dataset records)."""

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel

__all__ = ["file_digest", "frame_digest", "model_digest", "value_digest"]


def frame_digest(frame: pl.DataFrame) -> str:
    """SHA-256 over a frame's schema and column values, in row order.

    Numeric and temporal columns contribute their raw buffers, string columns their UTF-8 text with explicit
    lengths, so the digest depends on content only (not on chunking or on the polars version).
    """
    digest = hashlib.sha256()
    digest.update(json.dumps([[name, str(dtype)] for name, dtype in frame.schema.items()]).encode())
    digest.update(str(frame.height).encode())
    for name in frame.columns:
        column = frame.get_column(name)
        digest.update(column.is_null().to_numpy().tobytes())
        if column.dtype in (pl.Utf8, pl.Categorical, pl.Enum):
            text = column.cast(pl.Utf8).fill_null("")
            digest.update(text.str.len_bytes().to_numpy().astype(np.int64).tobytes())
            digest.update("".join(text.to_list()).encode())
        elif column.dtype.is_temporal():
            digest.update(column.to_physical().fill_null(0).to_numpy().astype(np.int64).tobytes())
        else:
            digest.update(np.ascontiguousarray(column.fill_null(0).to_numpy()).tobytes())
    return digest.hexdigest()


def model_digest(model: BaseModel) -> str:
    """SHA-256 of a pydantic model's canonical JSON (sorted keys)."""
    return value_digest(model.model_dump(mode="json"))


def value_digest(value: Any) -> str:
    """SHA-256 of a JSON-serializable value with sorted keys."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
