from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import polars as pl

from tasks.caching import code_version, input_digest_key


@dataclass(frozen=True)
class _Bundle:
    frame: pl.DataFrame
    values: np.ndarray


def _key(**parameters: object) -> str:
    context = SimpleNamespace(task=SimpleNamespace(name="build-features"))
    return input_digest_key(context, parameters)  # type: ignore[arg-type]


def test_key_follows_content_not_identity() -> None:
    frame = pl.DataFrame({"x": [1.0, 2.0]})
    assert _key(frame=frame) == _key(frame=frame.clone())
    assert _key(frame=frame) != _key(frame=frame.with_columns(pl.col("x") + 1))


def test_large_arrays_are_digested_in_full() -> None:
    values = np.zeros(100_000)
    changed = values.copy()
    changed[50_000] = 1.0  # str() of a large array elides the middle: the key must not
    assert _key(bundle=_Bundle(pl.DataFrame(), values)) != _key(bundle=_Bundle(pl.DataFrame(), changed))


def test_code_version_is_stable() -> None:
    assert code_version() == code_version()
    assert len(code_version()) == 64
