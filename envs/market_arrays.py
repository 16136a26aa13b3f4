"""Bars and features as contiguous numpy arrays: the only market input the trading env reads.

:func:`market_arrays` turns the canonical long bar frame and the long feature frame into one row per decision
bar (a timestamp where both tickers have a bar and a feature row), with ticker 0's features followed by
ticker 1's in one C-contiguous float32 matrix. The env copies nothing from polars after this point.

Sessions are New York calendar dates of the bar start (``ts`` converted to America/New_York), numbered from 0
in time order. Bars that have no feature row (the features' warm-up) are dropped; a feature row without a bar
is an error.
"""

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from core.spec import AgentSpec
from market.calendar import EXCHANGE_TZ

__all__ = ["MarketArrays", "market_arrays", "require_finite_features"]

_PRICE_FIELDS = ("open", "close", "volume")


@dataclass(frozen=True)
class MarketArrays:
    """The market as arrays, one row per decision bar, checked for shape and ordering on construction.

    ``features`` is float32 C-contiguous ``(T, 2 * F)``: ticker 0's ``F`` features, then ticker 1's, at each
    decision bar; ``feature_names`` names its columns (``"NVDA:log_return_1"``). ``open``, ``close`` and
    ``volume`` are float64 ``(T, 2)`` with column ``i`` for ``symbols[i]``. ``session_index`` is int64
    ``(T,)`` and non-decreasing; ``timestamps`` holds the bar starts (UTC) as ``datetime64[ns]``;
    ``regime_score`` is float32 ``(T,)`` (zeros when no regime scores were given). Prices must be finite and
    positive, volumes finite and non-negative. Feature values are checked by :func:`require_finite_features`
    (the env calls it).
    """

    features: np.ndarray
    feature_names: tuple[str, ...]
    open: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    session_index: np.ndarray
    timestamps: np.ndarray
    regime_score: np.ndarray
    symbols: tuple[str, str]

    def __post_init__(self) -> None:
        features = self.features
        if not isinstance(features, np.ndarray) or features.ndim != 2:
            msg = "features must be a 2-D numpy array (bars, 2 * features per ticker)"
            raise ValueError(msg)
        if features.dtype != np.float32 or not features.flags.c_contiguous:
            contiguous = features.flags.c_contiguous
            msg = f"features must be C-contiguous float32, got {features.dtype} (contiguous={contiguous})"
            raise ValueError(msg)
        rows, columns = features.shape
        if rows < 1:
            msg = "the market has no bars"
            raise ValueError(msg)
        if columns < 2 or columns % 2:
            msg = f"features must have an even number (>= 2) of columns, one block per ticker; got {columns}"
            raise ValueError(msg)
        if len(self.feature_names) != columns:
            msg = f"feature_names has {len(self.feature_names)} names for {columns} feature columns"
            raise ValueError(msg)
        if len(self.symbols) != 2 or self.symbols[0] == self.symbols[1]:
            msg = f"symbols must name two different tickers, got {self.symbols}"
            raise ValueError(msg)
        for name in _PRICE_FIELDS:
            array = getattr(self, name)
            if not isinstance(array, np.ndarray) or array.shape != (rows, 2) or array.dtype != np.float64:
                shape = getattr(array, "shape", None)
                dtype = getattr(array, "dtype", "")
                msg = f"{name} must be a float64 array of shape ({rows}, 2), got {shape} {dtype}"
                raise ValueError(msg)
        for name, dtype in (("session_index", np.int64), ("regime_score", np.float32)):
            array = getattr(self, name)
            if not isinstance(array, np.ndarray) or array.shape != (rows,) or array.dtype != dtype:
                shape = getattr(array, "shape", None)
                msg = f"{name} must be a {np.dtype(dtype)} array of shape ({rows},), got {shape}"
                raise ValueError(msg)
        if not isinstance(self.timestamps, np.ndarray) or self.timestamps.shape != (rows,):
            msg = f"timestamps must be an array of shape ({rows},)"
            raise ValueError(msg)
        if self.timestamps.dtype != np.dtype("datetime64[ns]"):
            msg = f"timestamps must be datetime64[ns], got {self.timestamps.dtype}"
            raise ValueError(msg)
        if rows > 1 and bool(np.any(np.diff(self.session_index) < 0)):
            msg = "session_index must be non-decreasing"
            raise ValueError(msg)
        for name in ("open", "close"):
            array = getattr(self, name)
            bad = ~(np.isfinite(array) & (array > 0.0))
            if bad.any():
                bar, ticker = (int(index) for index in np.argwhere(bad)[0])
                msg = (
                    f"{name} price of {self.symbols[ticker]} at bar {bar} ({self.timestamps[bar]}) "
                    f"must be finite and positive, got {array[bar, ticker]}"
                )
                raise ValueError(msg)
        bad = ~(np.isfinite(self.volume) & (self.volume >= 0.0))
        if bad.any():
            bar, ticker = (int(index) for index in np.argwhere(bad)[0])
            msg = (
                f"volume of {self.symbols[ticker]} at bar {bar} ({self.timestamps[bar]}) "
                f"must be finite and non-negative, got {self.volume[bar, ticker]}"
            )
            raise ValueError(msg)
        if not np.all(np.isfinite(self.regime_score)):
            bar = int(np.flatnonzero(~np.isfinite(self.regime_score))[0])
            msg = (
                f"regime_score at bar {bar} ({self.timestamps[bar]}) is not finite: {self.regime_score[bar]}"
            )
            raise ValueError(msg)

    @property
    def bars(self) -> int:
        """Number of decision bars ``T``."""
        return int(self.features.shape[0])

    @property
    def spec(self) -> AgentSpec:
        """The observation/action layout of an agent on this market's features."""
        return AgentSpec(self.feature_names)

    def session_bounds(self) -> list[tuple[int, int]]:
        """``(first, end)`` bar ranges of the sessions with at least two bars (an episode needs two), in order."""
        boundaries = np.flatnonzero(np.diff(self.session_index)) + 1
        firsts = np.concatenate(([0], boundaries)).tolist()
        ends = np.concatenate((boundaries, [self.bars])).tolist()
        return [(first, end) for first, end in zip(firsts, ends, strict=True) if end - first >= 2]

    def rows(self, start: int, stop: int | None) -> "MarketArrays":
        """Bars ``start`` to ``stop - 1`` (None: to the end) as their own contiguous market (a window, a session)."""
        part = slice(start, stop)
        return dataclasses.replace(
            self,
            features=np.ascontiguousarray(self.features[part]),
            open=np.ascontiguousarray(self.open[part]),
            close=np.ascontiguousarray(self.close[part]),
            volume=np.ascontiguousarray(self.volume[part]),
            session_index=np.ascontiguousarray(self.session_index[part]),
            timestamps=np.ascontiguousarray(self.timestamps[part]),
            regime_score=np.ascontiguousarray(self.regime_score[part]),
        )

    def with_regime_score(self, regime_score: np.ndarray) -> "MarketArrays":
        """A copy with ``regime_score``: one finite value per bar (``controllers.regime.regime_scores``)."""
        return dataclasses.replace(self, regime_score=_regime_array(regime_score, self.bars))


def require_finite_features(market: MarketArrays) -> None:
    """Raise ``ValueError`` naming the first bar (index, timestamp) and feature holding a NaN or infinity."""
    finite = np.isfinite(market.features)
    if finite.all():
        return
    bar, column = (int(index) for index in np.argwhere(~finite)[0])
    msg = (
        f"feature {market.feature_names[column]!r} is not finite at bar {bar} "
        f"({market.timestamps[bar]} UTC): {market.features[bar, column]}"
    )
    raise ValueError(msg)


def _regime_array(regime_score: np.ndarray | None, rows: int) -> np.ndarray:
    if regime_score is None:
        return np.zeros(rows, dtype=np.float32)
    array = np.asarray(regime_score)
    if array.shape != (rows,):
        msg = f"regime_score must have one value per decision bar: shape ({rows},), got {array.shape}"
        raise ValueError(msg)
    return np.ascontiguousarray(array, dtype=np.float32)


def _require_columns(frame: pl.DataFrame, columns: Sequence[str], *, what: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        msg = f"{what} frame lacks columns {missing} (has {frame.columns})"
        raise ValueError(msg)


def _require_unique_keys(frame: pl.DataFrame, *, what: str) -> None:
    duplicated = frame.filter(pl.struct("ts", "symbol").is_duplicated())
    if duplicated.height:
        first = duplicated.row(0, named=True)
        msg = (
            f"{what} frame has {duplicated.height} rows with a duplicated (ts, symbol), "
            f"first {first['symbol']} at {first['ts']}"
        )
        raise ValueError(msg)


def market_arrays(
    bars: pl.DataFrame,
    features: pl.DataFrame,
    *,
    feature_columns: Sequence[str],
    regime_score: np.ndarray | None = None,
    symbols: Sequence[str] | None = None,
) -> MarketArrays:
    """Decision-bar arrays from the canonical bar frame and a long feature frame (``ts``, ``symbol``, ...).

    ``feature_columns`` picks the observed features per ticker, in order (an out-of-fold signal column is just
    one more name). ``symbols`` fixes the ticker order (default: the two symbols of ``bars`` sorted). The
    decision bars are the feature timestamps; both tickers must have a feature row at each of them and every
    feature row needs a bar. ``regime_score`` is one value per decision bar (zeros when ``None``); use
    :meth:`MarketArrays.with_regime_score` when the scores are computed from these arrays' closes.
    Raises ``ValueError`` naming the mismatch.
    """
    feature_columns = list(feature_columns)
    if not feature_columns:
        msg = "feature_columns is empty: name at least one feature"
        raise ValueError(msg)
    if len(set(feature_columns)) != len(feature_columns):
        msg = f"feature_columns has duplicates: {feature_columns}"
        raise ValueError(msg)
    _require_columns(bars, ["ts", "symbol", *_PRICE_FIELDS], what="bar")
    _require_columns(features, ["ts", "symbol", *feature_columns], what="feature")
    bar_symbols = sorted(bars.get_column("symbol").unique().to_list())
    if symbols is None:
        if len(bar_symbols) != 2:
            msg = f"bars must hold exactly two symbols, got {bar_symbols}"
            raise ValueError(msg)
        chosen = (str(bar_symbols[0]), str(bar_symbols[1]))
    else:
        chosen_list = [str(symbol) for symbol in symbols]
        if len(chosen_list) != 2 or chosen_list[0] == chosen_list[1]:
            msg = f"symbols must name two different tickers, got {chosen_list}"
            raise ValueError(msg)
        chosen = (chosen_list[0], chosen_list[1])
    for symbol in chosen:
        if symbol not in bar_symbols:
            msg = f"symbol {symbol!r} has no bars (bars hold {bar_symbols})"
            raise ValueError(msg)
    feature_symbols = set(features.get_column("symbol").unique().to_list())
    if not set(chosen) <= feature_symbols:
        msg = f"features must hold rows for {list(chosen)}, got {sorted(feature_symbols)}"
        raise ValueError(msg)
    _require_unique_keys(bars, what="bar")
    _require_unique_keys(features, what="feature")

    for frame, what in ((bars, "bar"), (features, "feature")):
        dtype = frame.schema["ts"]
        if not isinstance(dtype, pl.Datetime) or dtype.time_zone is None:
            msg = f"{what} frame's ts must be a time-zone-aware Datetime (UTC bar start), got {dtype}"
            raise ValueError(msg)
    as_utc = pl.col("ts").dt.convert_time_zone("UTC").dt.cast_time_unit("ns")
    numeric = [pl.col(name).cast(pl.Float64) for name in _PRICE_FIELDS]
    bar_part = bars.select(as_utc, "symbol", *numeric, pl.lit(True).alias("_has_bar"))
    joined = (
        features.select(as_utc, "symbol", *[pl.col(name).cast(pl.Float64) for name in feature_columns])
        .filter(pl.col("symbol").is_in(list(chosen)))
        .join(bar_part, on=["ts", "symbol"], how="left")
    )
    orphans = joined.filter(pl.col("_has_bar").is_null())
    if orphans.height:
        first = orphans.row(0, named=True)
        msg = f"{orphans.height} feature rows have no bar, first {first['symbol']} at {first['ts']}"
        raise ValueError(msg)
    per_symbol = [joined.filter(pl.col("symbol") == symbol).sort("ts") for symbol in chosen]
    timestamps_0 = per_symbol[0].get_column("ts")
    timestamps_1 = per_symbol[1].get_column("ts")
    if timestamps_0.len() != timestamps_1.len() or not timestamps_0.equals(timestamps_1):
        only_0 = set(timestamps_0.to_list()) - set(timestamps_1.to_list())
        only_1 = set(timestamps_1.to_list()) - set(timestamps_0.to_list())
        msg = (
            f"the two tickers' feature rows are on different timestamps: {len(only_0)} only for {chosen[0]} "
            f"(first {min(only_0) if only_0 else None}), {len(only_1)} only for {chosen[1]} "
            f"(first {min(only_1) if only_1 else None})"
        )
        raise ValueError(msg)
    if timestamps_0.len() == 0:
        msg = "no decision bars: the feature frame has no rows for the chosen symbols"
        raise ValueError(msg)

    matrix = np.empty((timestamps_0.len(), 2 * len(feature_columns)), dtype=np.float32)
    for ticker, frame in enumerate(per_symbol):
        block = frame.select(feature_columns).to_numpy().astype(np.float32, copy=False)
        matrix[:, ticker * len(feature_columns) : (ticker + 1) * len(feature_columns)] = block
    prices = {
        name: np.ascontiguousarray(
            np.column_stack([frame.get_column(name).to_numpy().astype(np.float64) for frame in per_symbol])
        )
        for name in _PRICE_FIELDS
    }
    ts_utc = timestamps_0
    session_dates = ts_utc.dt.convert_time_zone(str(EXCHANGE_TZ)).dt.date()
    session_index = session_dates.rank(method="dense").cast(pl.Int64).to_numpy() - 1
    timestamps = ts_utc.dt.replace_time_zone(None).cast(pl.Datetime("ns")).to_numpy()
    names = tuple(f"{symbol}:{name}" for symbol in chosen for name in feature_columns)
    return MarketArrays(
        features=np.ascontiguousarray(matrix),
        feature_names=names,
        open=prices["open"],
        close=prices["close"],
        volume=prices["volume"],
        session_index=np.ascontiguousarray(session_index, dtype=np.int64),
        timestamps=np.ascontiguousarray(timestamps, dtype="datetime64[ns]"),
        regime_score=_regime_array(regime_score, timestamps_0.len()),
        symbols=chosen,
    )
