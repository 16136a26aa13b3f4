"""One conversion of the series-like inputs the public APIs accept (polars, pandas, numpy, sequences)."""

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

__all__ = ["as_series"]


def _datetime_series_from_pandas(index: pd.DatetimeIndex, *, name: str) -> pl.Series:
    """Nanosecond Datetime series from pandas datetimes, keeping the zone (pandas' ``.values`` drops it)."""
    ticks = index.as_unit("ns").asi8
    zone = None if index.tz is None else str(index.tz)
    series = pl.Series(name, ticks, dtype=pl.Int64).cast(pl.Datetime("ns", zone))
    missing = np.asarray(index.isna())
    if missing.any():
        series = series.scatter(np.flatnonzero(missing), None)
    return series


def as_series(values: Any, *, what: str, nan_to_null: bool = False) -> pl.Series:
    """A polars Series from a polars/pandas Series or index, a 1-D numpy array or a sequence.

    pandas datetimes keep their time zone; pandas NaN becomes null; with ``nan_to_null`` so do NaN floats of a
    numpy array. ``what`` names the argument in error messages.
    """
    if isinstance(values, pl.Series):
        return values
    if isinstance(values, pd.DatetimeIndex) or (
        isinstance(values, pd.Series)
        and isinstance(values.dtype, pd.DatetimeTZDtype | np.dtypes.DateTime64DType)
    ):
        return _datetime_series_from_pandas(pd.DatetimeIndex(values), name=what)
    if isinstance(values, pd.Index):
        return pl.Series(what, values.to_numpy())
    if isinstance(values, pd.Series):
        return pl.Series(what, values.reset_index(drop=True))
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            message = f"{what} must be one-dimensional, got an array of shape {values.shape}"
            raise ValueError(message)
        return pl.Series(what, values, nan_to_null=nan_to_null and values.dtype.kind == "f")
    if isinstance(values, Sequence) and not isinstance(values, str | bytes):
        try:
            return pl.Series(what, list(values))
        except (TypeError, pl.exceptions.PolarsError) as e:
            message = f"{what} could not be read as a series: {e}"
            raise ValueError(message) from e
    message = (
        f"{what} must be a polars/pandas Series, a numpy array or a sequence, got {type(values).__name__}"
    )
    raise TypeError(message)
