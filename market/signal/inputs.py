"""The frames the signal reads: checks of the feature and label frames, and timestamps as int64 nanoseconds.

Both the walk-forward fit (:func:`market.signal.plan.prepare`) and the forward model
(:meth:`market.signal.model.SignalModel.predict`) read the same long feature frame, so they check it the same
way here. Timestamps become exact int64 nanoseconds since the epoch (UTC) so that comparisons such as
``t1 < refit time`` are exact integer comparisons.
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np
import polars as pl

from core.errors import ConfigError

__all__ = ["check_features", "datetime_ticks", "iso_time", "primary_labels", "utc_ticks"]

_LABEL_COLUMNS: Final[tuple[str, ...]] = ("symbol", "event_ts", "horizon", "t1", "label")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def utc_ticks(series: pl.Series) -> np.ndarray:
    """int64 nanoseconds since the epoch (UTC) of a timezone-aware Datetime series."""
    utc = series.dt.convert_time_zone("UTC").dt.cast_time_unit("ns")
    return utc.to_physical().to_numpy().astype(np.int64)


def datetime_ticks(moment: datetime) -> int:
    """Exact int64 nanoseconds since the epoch of a timezone-aware datetime (no float rounding)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def iso_time(ticks: int) -> str:
    """ISO 8601 text (UTC, microseconds) of int64 nanoseconds since the epoch, for messages and reports."""
    return (_EPOCH + timedelta(microseconds=int(ticks) // 1_000)).isoformat()


def check_features(features: pl.DataFrame, feature_columns: Sequence[str]) -> list[str]:
    """Check the long feature frame (``ts``, ``symbol``, feature columns); return the feature columns.

    ``ConfigError`` for empty, duplicated or missing feature columns; ``ValueError`` for a frame without
    ``ts``/``symbol``, a naive ``ts``, an empty frame, non-finite feature values or a duplicated
    (symbol, ts).
    """
    columns = list(feature_columns)
    if not columns:
        message = "feature_columns is empty: name at least one feature"
        raise ConfigError(message)
    if len(set(columns)) != len(columns):
        message = f"feature_columns has duplicates: {columns}"
        raise ConfigError(message)
    for name in ("ts", "symbol"):
        if name not in features.columns:
            message = f"features lack column `{name}`; pass the frame build_features returns"
            raise ValueError(message)
    missing = [name for name in columns if name not in features.columns]
    if missing:
        message = f"feature column(s) {missing} are not in features (it has {features.columns})"
        raise ConfigError(message)
    if not isinstance(features.schema["ts"], pl.Datetime) or features.schema["ts"].time_zone is None:
        message = f"features.ts must be a timezone-aware Datetime, got {features.schema['ts']}"
        raise ValueError(message)
    if features.height == 0:
        message = "features is empty"
        raise ValueError(message)
    values = features.select(pl.col(columns).cast(pl.Float64)).to_numpy()
    bad = ~np.isfinite(values)
    if bad.any():
        rows, cols = np.nonzero(bad)
        message = (
            f"features hold {int(bad.sum())} null/NaN/infinite value(s) in the feature columns (first in "
            f"`{columns[int(cols[0])]}` at row {int(rows[0])})"
        )
        raise ValueError(message)
    duplicated = features.select("symbol", "ts").is_duplicated()
    if duplicated.any():
        message = f"features have {int(duplicated.sum())} rows with a duplicated (symbol, ts)"
        raise ValueError(message)
    return columns


def primary_labels(labels: pl.DataFrame, *, primary_horizon: int) -> pl.DataFrame:
    """The labels at ``primary_horizon``: ``symbol``, ``ts`` (the event time), ``t1``, ``label``, in UTC ns.

    ``ValueError`` for missing columns, naive timestamps or duplicated (symbol, event_ts) rows;
    ``ConfigError`` when no label has the primary horizon.
    """
    missing = [name for name in _LABEL_COLUMNS if name not in labels.columns]
    if missing:
        message = f"labels lack column(s) {missing}; pass the frame label_bars returns"
        raise ValueError(message)
    for name in ("event_ts", "t1"):
        dtype = labels.schema[name]
        if not isinstance(dtype, pl.Datetime) or dtype.time_zone is None:
            message = f"labels.{name} must be a timezone-aware Datetime, got {dtype}"
            raise ValueError(message)
    primary = labels.filter(pl.col("horizon") == primary_horizon).select(
        pl.col("symbol").cast(pl.Utf8),
        pl.col("event_ts").dt.convert_time_zone("UTC").dt.cast_time_unit("ns").alias("ts"),
        pl.col("t1").dt.convert_time_zone("UTC").dt.cast_time_unit("ns"),
        "label",
    )
    if primary.height == 0:
        present = sorted(labels["horizon"].drop_nulls().unique().to_list())
        message = f"labels have no rows at primary_horizon {primary_horizon} (horizons present: {present})"
        raise ConfigError(message)
    duplicated = primary.select("symbol", "ts").is_duplicated()
    if duplicated.any():
        message = (
            f"labels have {int(duplicated.sum())} duplicated (symbol, event_ts) rows at the primary horizon"
        )
        raise ValueError(message)
    return primary
