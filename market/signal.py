"""Causal signal for the RL agent: a small classifier of the triple-barrier label, fitted walk-forward.

A classifier (torch; multinomial logistic regression, or a one-hidden-layer MLP) learns the primary-horizon
triple-barrier label (-1/0/+1) from the bar features. Its probability for each bar becomes one more
observation feature for the agent: ``signal = P(+1) - P(-1)`` in [-1, 1]. The rule that governs everything
here: a bar's signal comes only from a model fitted on samples whose labels ended strictly before the
model's refit time, which is at or before the bar. With features that read past prices only and labels
that read the price path up to ``t1`` (as :func:`market.features.build_features` and
:func:`market.labeling.label_bars` do), changing any price after a time ``t`` therefore changes no signal at
or before ``t``: every row's signal is what a live system would have had then.

Design choices:

- **One model per symbol.** The two symbols have different volatility and (in the planted synthetic market)
  different predictability, and a per-symbol model never has to learn the symbol as a feature. The refit
  times are the same for every symbol.
- **Samples.** A sample is a feature bar with a label at the primary horizon whose ``t1`` is known (events
  with barrier ``"none"``, ``t1`` null, have no known label and are never trained on). Every feature bar
  gets a signal, sample or not.
- **Refit times (expanding walk-forward).** Sessions are the calendar dates (America/New_York) of the
  feature bars, counted from the first one. A model is refitted at the first feature bar of every
  ``refit_every_sessions``-th session (sessions 0, N, 2N, ...) and at each time in ``window_starts`` (so
  every named window, e.g. selection and test, begins with a fresh model); a window start between two bars
  takes effect at the first feature bar at or after it, which trains on the same samples. Refit times
  depend only on the feature timestamps and ``window_starts``, never on sample counts or label values, so
  no price after ``t`` can move a refit time at or before ``t``.
- **Blocks.** A block is the rows from one refit time up to the next (the last block runs to the end). The
  first refit is the first feature bar, so every row lies in a block; ``block`` numbers them from 0 in time
  order, warm-up blocks included. The model of the block starting at ``b`` trains on every sample with
  ``t1 < b`` (strict), of any earlier block or window: the set only grows (expanding). It predicts the
  block's rows (``source="walk_forward"``). No training sample comes after the block, so no embargo is
  needed, and purging is the ``t1 < b`` rule itself: a sample whose label is still open at ``b`` waits for
  a later block.
- **Warm-up.** A block whose training set has fewer than ``min_train_samples`` samples or fewer than two
  label classes has no model: its rows get the explicit neutral signal 0.0 with ``source="warmup"`` and
  are not scored. Block 0 is always a warm-up block (no label ends before the first feature bar); since
  training sets only grow, the warm-up blocks are the first ones.
- **Windows.** ``window`` names the window each row lies in: ``"train"`` before the first window start,
  then the ``window_starts`` names in time order. A block never straddles two windows.
- **Forward model for new bars**: the model of the last block (the most recent refit, trained on every
  sample whose label ended before it) as :class:`SignalModel` (``SignalResult.forward_model``): numpy
  weights and standardization per symbol, JSON-serializable, whose numpy forward pass equals the torch
  model's output up to float rounding. It gives bars never seen here (synthetic stress scenarios, live bars)
  the production signal. When the last block is a warm-up block there is no forward model, and
  :func:`causal_signal` raises ``ConfigError`` before fitting anything.
- **Standardization** uses the training samples' mean and standard deviation of each model only.
- **Fitting**: one fit per block (warm-up blocks none), full batch, minimizing the mean cross-entropy plus
  ``weight_decay / 2`` times the squared weights (not the biases). The logistic model is convex: L-BFGS with
  a strong-Wolfe line search runs up to ``epochs`` iterations and stops at convergence (typically 10-30),
  so it reaches the unique optimum and ``learning_rate`` is not used. The MLP runs ``epochs`` Adam steps at
  ``learning_rate``. Biases start at the log class prior, logistic weights at zero, MLP weights from a
  seeded generator. :func:`training_plan` exposes which samples train which block's model and which bars it
  predicts.
- **Scores** (report only; nothing is fitted on a block's own labels): every sample of a walk-forward block
  is scored against its label, and against the baseline of the same block: the class prior of the block's
  training labels, Laplace-smoothed (``(count + 1) / (n + 3)``) so that a class missing from training does
  not give an infinite log loss. Scores are pooled per block, per symbol, per window and overall.
- **Meta-labels** (AFML 3.6, report only; they change no signal): on the walk-forward samples, the primary
  side is the sign of the signal (signal 0 skipped) and the meta-label is 1 when the label equals the side
  (the profit-take barrier in that direction was touched first), else 0. The meta filter is walk-forward
  too: the filter of a block is a logistic model on the features plus ``|signal|``, trained on the signed
  walk-forward samples of earlier blocks whose ``t1`` is before the block's start (at least
  ``min_train_samples`` of them, both meta-labels present; else the block's samples are not meta-scored),
  and it predicts the block's signed samples at threshold 0.5. Every ``|signal|`` it reads came from a
  model that trained only on labels ending before that sample, so the old second-order leakage of stacking
  out-of-fold predictions does not arise.
- **Determinism**: seeds derive from ``seed``, the symbol name (CRC-32), the model kind (primary or meta)
  and the block index; on CPU the same inputs, seed and thread count give identical output: the fits use
  only dense CPU operations (linear layers, cross-entropy, L-BFGS/Adam on the full batch), which are
  deterministic there. No global torch setting is changed: ``torch.use_deterministic_algorithms`` is not
  switched on because its first call imports torch's compiler stack (about 0.8 s) and would guard nothing
  these operations need; thread settings are left to the caller.
"""

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

import numpy as np
import polars as pl
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict, Field

from market.calendar import EXCHANGE_TZ
from stairways.errors import ConfigError

__all__ = [
    "SIGNAL_COLUMNS",
    "TRAIN_WINDOW",
    "SignalConfig",
    "SignalModel",
    "SignalResult",
    "SymbolSignalModel",
    "SymbolTrainingPlan",
    "causal_signal",
    "plot_calibration",
    "training_plan",
]

SIGNAL_COLUMNS: Final[tuple[str, ...]] = ("ts", "symbol", "signal", "source", "block", "window")
TRAIN_WINDOW: Final = "train"
"""Name of the window before the first of ``window_starts`` (every row when there is none)."""
_CLASSES: Final[tuple[int, ...]] = (-1, 0, 1)
_LABEL_COLUMNS: Final[tuple[str, ...]] = ("symbol", "event_ts", "horizon", "t1", "label")
_SCORE_KEYS: Final[tuple[str, ...]] = ("log_loss", "accuracy", "balanced_accuracy")
_NO_WINDOWS: Final[Mapping[str, datetime]] = MappingProxyType({})
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_PRIMARY_STREAM: Final = 0
_META_STREAM: Final = 1
_PROBABILITY_FLOOR: Final = 1e-15
_STD_FLOOR: Final = 1e-12
_META_THRESHOLD: Final = 0.5


class SignalConfig(BaseModel):
    """The signal classifier and its expanding walk-forward refits.

    There is no fold count and no embargo: in a forward walk no training sample lies after the block it
    predicts, and a sample trains a block's model only once its label has ended (``t1`` before the refit).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: Literal["logistic", "mlp"] = Field(
        default="logistic",
        description="'logistic': multinomial logistic regression; 'mlp': one ReLU hidden layer.",
    )
    hidden_units: int = Field(default=16, ge=1, description="Hidden units of the MLP (model 'mlp' only).")
    refit_every_sessions: int = Field(
        default=5,
        ge=1,
        description="Refit the model at the first feature bar of every N-th session (America/New_York "
        "dates, counted from the first feature session), besides each window start.",
    )
    min_train_samples: int = Field(
        default=200,
        ge=1,
        description="Fewest samples whose labels ended before a refit for that block to get a model; "
        "a block with fewer (or with a single label class) is warm-up: neutral signal 0.0.",
    )
    epochs: int = Field(
        default=200,
        ge=1,
        description="Full-batch iterations per fit: the most L-BFGS iterations (logistic; it stops at "
        "convergence) or the number of Adam steps (mlp).",
    )
    learning_rate: float = Field(
        default=0.05, gt=0.0, description="Adam learning rate of the MLP (L-BFGS uses a line search)."
    )
    weight_decay: float = Field(
        default=0.1,
        ge=0.0,
        description="L2 penalty: weight_decay / 2 times the squared weights (not the biases) is added to the "
        "mean cross-entropy. 0.1 beat 0.01 and 0.001 out of sample on the early, small walk-forward blocks "
        "(regimes and planted synthetic markets, seeds 1-2).",
    )
    calibration_bins: int = Field(
        default=10, ge=2, description="Equal-width probability bins of the reliability report."
    )


def _frozen_array(values: Any, *, name: str, ndim: int) -> np.ndarray:
    try:
        array = np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        message = f"{name} must be numeric"
        raise ValueError(message) from error
    if array.ndim != ndim:
        message = f"{name} must have {ndim} dimension(s), got shape {array.shape}"
        raise ValueError(message)
    if not np.isfinite(array).all():
        message = f"{name} holds non-finite values"
        raise ValueError(message)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class SymbolSignalModel:
    """One symbol's fitted classifier as numpy arrays: standardization, then linear layers (ReLU between).

    ``weights[k]`` is ``(out, in)`` and ``biases[k]`` is ``(out,)`` as in ``torch.nn.Linear``; the last layer
    has the three classes (-1, 0, +1) as outputs. Arrays are copied to read-only float64 on construction.
    """

    mean: np.ndarray
    """Mean of each feature over the model's training samples."""
    std: np.ndarray
    """Standard deviation of each feature over the training samples (1.0 where it was ~0)."""
    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]

    def __post_init__(self) -> None:
        mean = _frozen_array(self.mean, name="mean", ndim=1)
        std = _frozen_array(self.std, name="std", ndim=1)
        if std.shape != mean.shape or (std <= 0.0).any():
            message = f"std must be positive with the shape of mean {mean.shape}, got {std.shape}"
            raise ValueError(message)
        if not self.weights or len(self.weights) != len(self.biases):
            message = (
                f"weights and biases must be non-empty and of equal length, got {len(self.weights)} and "
                f"{len(self.biases)}"
            )
            raise ValueError(message)
        weights = tuple(
            _frozen_array(weight, name=f"weights[{index}]", ndim=2)
            for index, weight in enumerate(self.weights)
        )
        biases = tuple(
            _frozen_array(bias, name=f"biases[{index}]", ndim=1) for index, bias in enumerate(self.biases)
        )
        width = mean.shape[0]
        for index, (weight, bias) in enumerate(zip(weights, biases, strict=True)):
            if weight.shape[1] != width or bias.shape != (weight.shape[0],):
                message = (
                    f"layer {index}: weight {weight.shape} and bias {bias.shape} do not take {width} inputs"
                )
                raise ValueError(message)
            width = weight.shape[0]
        if width != len(_CLASSES):
            message = f"the last layer must have {len(_CLASSES)} outputs (classes -1, 0, +1), got {width}"
            raise ValueError(message)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "biases", biases)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, 3)`` for P(-1), P(0), P(+1) of raw feature rows ``(n, F)`` (float64)."""
        hidden = (np.asarray(features, dtype=np.float64) - self.mean) / self.std
        last = len(self.weights) - 1
        for index, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            hidden = hidden @ weight.T + bias
            if index < last:
                hidden = np.maximum(hidden, 0.0)
        shifted = hidden - hidden.max(axis=1, keepdims=True)
        exponentials = np.exp(shifted)
        return exponentials / exponentials.sum(axis=1, keepdims=True)


_MODEL_FORMAT: Final = 1


@dataclass(frozen=True, eq=False)
class SignalModel:
    """The forward signal model of every symbol, reusable on bars it never saw (numpy only, no torch).

    It is the model of the last walk-forward block (the most recent refit, fit on every sample whose label
    ended before it). :meth:`predict` gives the same signal as that torch model up to float rounding (about
    1e-12), so new bars (e.g. synthetic stress scenarios, live bars) get the production signal.
    :meth:`to_dict` / :meth:`from_dict` round-trip it through JSON exactly.
    """

    feature_columns: tuple[str, ...]
    kind: Literal["logistic", "mlp"]
    symbols: dict[str, SymbolSignalModel]

    def __post_init__(self) -> None:
        columns = tuple(str(name) for name in self.feature_columns)
        if not columns or len(set(columns)) != len(columns):
            message = f"feature_columns must be non-empty and unique, got {list(columns)}"
            raise ValueError(message)
        if self.kind not in ("logistic", "mlp"):
            message = f"kind must be 'logistic' or 'mlp', got {self.kind!r}"
            raise ValueError(message)
        if not self.symbols:
            message = "a signal model needs at least one symbol"
            raise ValueError(message)
        for symbol, model in self.symbols.items():
            if not isinstance(model, SymbolSignalModel) or model.mean.shape != (len(columns),):
                message = f"symbol {symbol}: expected a SymbolSignalModel over {len(columns)} features"
                raise ValueError(message)
        object.__setattr__(self, "feature_columns", columns)
        object.__setattr__(self, "symbols", dict(self.symbols))

    def predict(self, features: pl.DataFrame) -> pl.DataFrame:
        """Signal ``P(+1) - P(-1)`` of every row: ``ts`` (Datetime ns UTC), ``symbol``, ``signal`` (Float64).

        ``features`` is a long frame with ``ts``, ``symbol`` and :attr:`feature_columns` (e.g. from
        :func:`market.features.build_features`). Sorted by symbol, ts. Raises ``ConfigError`` for missing
        feature columns and ``ValueError`` for a symbol the model does not know, non-finite features,
        duplicated keys or an empty frame.
        """
        columns = _check_features(features, self.feature_columns)
        present = sorted(str(value) for value in features["symbol"].unique().to_list())
        unknown = [symbol for symbol in present if symbol not in self.symbols]
        if unknown:
            message = (
                f"the signal model has no weights for symbol(s) {unknown} (it has {sorted(self.symbols)})"
            )
            raise ValueError(message)
        frames = []
        for symbol in present:
            rows = (
                features.filter(pl.col("symbol") == symbol)
                .select(pl.col("ts").dt.convert_time_zone("UTC").dt.cast_time_unit("ns"), *columns)
                .sort("ts")
            )
            values = rows.select(columns).cast(pl.Float64).to_numpy()
            probabilities = self.symbols[symbol].probabilities(values)
            signal = np.clip(probabilities[:, 2] - probabilities[:, 0], -1.0, 1.0)
            frames.append(
                pl.DataFrame(
                    {
                        "ts": rows["ts"],
                        "symbol": pl.Series([symbol] * rows.height, dtype=pl.Utf8),
                        "signal": pl.Series(signal, dtype=pl.Float64),
                    }
                )
            )
        return pl.concat(frames, how="vertical").sort("symbol", "ts")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (plain lists of floats; ``json.dumps`` round-trips them exactly)."""
        return {
            "format_version": _MODEL_FORMAT,
            "kind": self.kind,
            "feature_columns": list(self.feature_columns),
            "symbols": {
                symbol: {
                    "mean": model.mean.tolist(),
                    "std": model.std.tolist(),
                    "layers": [
                        {"weight": weight.tolist(), "bias": bias.tolist()}
                        for weight, bias in zip(model.weights, model.biases, strict=True)
                    ],
                }
                for symbol, model in sorted(self.symbols.items())
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SignalModel":
        """Rebuild a model from :meth:`to_dict`'s output; ``ValueError`` naming what is malformed."""
        try:
            version = data["format_version"]
            if version != _MODEL_FORMAT:
                message = f"signal model format {version!r} is not {_MODEL_FORMAT}"
                raise ValueError(message)
            symbols = {
                str(symbol): SymbolSignalModel(
                    mean=entry["mean"],
                    std=entry["std"],
                    weights=tuple(layer["weight"] for layer in entry["layers"]),
                    biases=tuple(layer["bias"] for layer in entry["layers"]),
                )
                for symbol, entry in data["symbols"].items()
            }
            return cls(feature_columns=tuple(data["feature_columns"]), kind=data["kind"], symbols=symbols)
        except (KeyError, TypeError, AttributeError) as error:
            message = f"malformed signal model dict: {error!r}"
            raise ValueError(message) from error


@dataclass(frozen=True)
class SignalResult:
    """Outcome of :func:`causal_signal`."""

    signal: pl.DataFrame
    """Every feature bar: ``ts``, ``symbol``, ``signal`` (Float64 in [-1, 1]; exactly 0.0 on warm-up rows),
    ``source`` (``"warmup"`` or ``"walk_forward"``), ``block`` (Int64, 0-based, warm-up blocks counted),
    ``window`` (``"train"`` or a ``window_starts`` name); sorted by symbol, ts."""
    cv_scores: dict[str, Any]
    """Walk-forward scores (log loss, accuracy, balanced accuracy) of the model and of the class-prior
    baseline over every walk-forward sample: flat at the top level (``log_loss``, ``accuracy``,
    ``balanced_accuracy``, ``baseline_log_loss``, ...) for metric logging and under ``mean`` (``model``,
    ``baseline``). ``symbols[symbol]``: ``n_samples`` (every resolved sample), ``blocks`` (per block: index,
    start, window, source, n_train, n_test, model and baseline scores, None for warm-up blocks) and
    ``out_of_sample`` (pooled over the symbol's walk-forward samples: n, model, baseline, the signal's
    correlation with the label, its directional accuracy, the sign of the signal vs a non-zero label, and
    that comparison's support). ``windows[name]``: the same pooled figures per window over all symbols.
    Scores over no sample are None."""
    calibration: dict[str, Any]
    """Per symbol and ``pooled``: reliability bins for P(+1) (``up``) and P(-1) (``down``) with mean
    predicted probability, observed frequency and count, their Brier scores, the baseline's Brier scores and
    the multiclass Brier score; over walk-forward samples."""
    meta_report: dict[str, Any]
    """Per symbol and ``pooled``: walk-forward precision, recall, F1 of the meta-label filter at
    ``threshold``, the base rate (share of meta-label 1), support (meta-scored samples) and predicted
    positives (None where undefined, e.g. precision with no predicted positive); a symbol's ``skipped`` gives
    the reason when no block of it had a meta filter. The pooled figures also sit at the top level."""
    forward_model: SignalModel
    """The last block's model of every symbol as numpy arrays: it predicts new bars
    (:meth:`SignalModel.predict`) as the last block's torch model predicted its rows."""


@dataclass(frozen=True)
class SymbolTrainingPlan:
    """Which samples train which block's model, and which bars it predicts, for one symbol.

    Bars are the symbol's feature rows in time order; samples are positions into them; a block's training
    and test sets are positions into the samples. The causal rule:
    ``sample_t1[block_train[k]] < block_start[k] <= bar_ts[block_bars[k]]``.
    """

    symbol: str
    bar_ts: np.ndarray
    """int64 nanoseconds since the epoch (UTC) of every feature bar, increasing."""
    bar_block: np.ndarray
    """int64 block of each bar: the last block whose start is at or before the bar."""
    sample_bars: np.ndarray
    """Bar positions of the samples (feature bars with a resolved primary-horizon label)."""
    sample_t1: np.ndarray
    """int64 nanoseconds of each sample's label end ``t1``."""
    sample_label: np.ndarray
    """int8 label (-1/0/+1) of each sample."""
    block_start: np.ndarray
    """int64 nanoseconds of each block's refit time (a feature bar), increasing; the same for every symbol."""
    block_window: tuple[str, ...]
    """Window name of each block (``"train"`` or a ``window_starts`` name)."""
    block_train: tuple[np.ndarray, ...]
    """Per block, the sample positions its model trains on: every sample with ``t1 < block_start``."""
    block_test: tuple[np.ndarray, ...]
    """Per block, the sample positions among its bars (scored against their labels, never fitted on)."""
    block_bars: tuple[np.ndarray, ...]
    """Per block, the bar positions its model predicts (contiguous, increasing)."""
    block_has_model: np.ndarray
    """bool per block: at least ``min_train_samples`` training samples of at least two classes; False marks
    a warm-up block (neutral signal)."""


# ------------------------------------------------------------------------------------------------------------
# Input checks, the refit schedule and the training plan
# ------------------------------------------------------------------------------------------------------------


def _ticks(series: pl.Series) -> np.ndarray:
    utc = series.dt.convert_time_zone("UTC").dt.cast_time_unit("ns")
    return utc.to_physical().to_numpy().astype(np.int64)


def _datetime_ticks(moment: datetime) -> int:
    """Exact int64 nanoseconds since the epoch of a timezone-aware datetime (no float rounding)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _iso(ticks: int) -> str:
    return (_EPOCH + timedelta(microseconds=int(ticks) // 1_000)).isoformat()


def _check_features(features: pl.DataFrame, feature_columns: Sequence[str]) -> list[str]:
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


def _primary_labels(labels: pl.DataFrame, *, primary_horizon: int) -> pl.DataFrame:
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


@dataclass(frozen=True)
class _Schedule:
    block_start: np.ndarray
    block_window: tuple[str, ...]


def _window_ticks(
    window_starts: Mapping[str, datetime], *, first: int, last: int
) -> list[tuple[str, int]]:
    """The named window starts as (name, nanoseconds), checked and in time order."""
    windows = []
    for name, start in window_starts.items():
        if not isinstance(name, str) or not name or name == TRAIN_WINDOW:
            message = (
                f"window names must be non-empty strings other than {TRAIN_WINDOW!r} (the name of the rows "
                f"before the first window start), got {name!r}"
            )
            raise ValueError(message)
        if not isinstance(start, datetime):
            message = f"window_starts[{name!r}] must be a datetime, got {type(start).__name__}"
            raise TypeError(message)
        if start.tzinfo is None or start.utcoffset() is None:
            message = (
                f"window_starts[{name!r}] must be timezone-aware (bars are UTC), got naive "
                f"{start.isoformat()}"
            )
            raise ValueError(message)
        ticks = _datetime_ticks(start)
        if not first <= ticks <= last:
            message = (
                f"window_starts[{name!r}] = {start.isoformat()} lies outside the feature bars "
                f"({_iso(first)} to {_iso(last)})"
            )
            raise ValueError(message)
        windows.append((name, ticks))
    return sorted(windows, key=lambda window: window[1])


def _schedule(
    features: pl.DataFrame, *, window_starts: Mapping[str, datetime], refit_every_sessions: int
) -> _Schedule:
    """Refit times from the feature timestamps (all symbols) and the window starts only."""
    grid = (
        features.select(pl.col("ts").dt.convert_time_zone("UTC").dt.cast_time_unit("ns")).unique().sort("ts")
    )
    ticks = _ticks(grid["ts"])
    session = grid["ts"].dt.convert_time_zone(str(EXCHANGE_TZ)).dt.date().to_physical().to_numpy()
    session_first = np.flatnonzero(np.concatenate([[True], session[1:] != session[:-1]]))
    session_refits = ticks[session_first[::refit_every_sessions]]
    windows = _window_ticks(window_starts, first=int(ticks[0]), last=int(ticks[-1]))
    # A start between two bars takes effect at the next bar: no label ends in between, same training set.
    window_refits = ticks[np.searchsorted(ticks, [start for _, start in windows], side="left")]
    for position in range(1, len(windows)):
        if window_refits[position] == window_refits[position - 1]:
            message = (
                f"windows {windows[position - 1][0]!r} and {windows[position][0]!r} start at the same "
                f"feature bar {_iso(window_refits[position])}; give each window at least one bar"
            )
            raise ValueError(message)
    block_start = np.union1d(session_refits, window_refits).astype(np.int64)
    names = (TRAIN_WINDOW, *(name for name, _ in windows))
    window_of_block = np.searchsorted(window_refits, block_start, side="right")
    return _Schedule(block_start, tuple(names[int(index)] for index in window_of_block))


@dataclass(frozen=True)
class _SymbolData:
    plan: SymbolTrainingPlan
    features: np.ndarray


def _symbol_plan(
    symbol: str, joined: pl.DataFrame, *, schedule: _Schedule, config: SignalConfig
) -> SymbolTrainingPlan:
    """Training plan of one symbol from its feature rows left-joined with its primary labels."""
    bar_ts = _ticks(joined["ts"])
    if joined["label"].null_count() == joined.height:
        message = (
            f"symbol {symbol}: features and labels share no timestamps at the primary horizon; are they "
            "computed from the same bars?"
        )
        raise ValueError(message)
    resolved = (joined["t1"].is_not_null() & joined["label"].is_not_null()).to_numpy()
    sample_bars = np.flatnonzero(resolved).astype(np.int64)
    sample_t1 = _ticks(joined["t1"].gather(sample_bars))
    sample_label = joined["label"].gather(sample_bars).cast(pl.Int8).to_numpy()

    block_start = schedule.block_start
    bar_block = (np.searchsorted(block_start, bar_ts, side="right") - 1).astype(np.int64)
    sample_block = bar_block[sample_bars]
    n_blocks = block_start.shape[0]
    bar_edges = np.searchsorted(bar_block, np.arange(n_blocks + 1), side="left")
    sample_edges = np.searchsorted(sample_block, np.arange(n_blocks + 1), side="left")
    block_train = tuple(np.flatnonzero(sample_t1 < start).astype(np.int64) for start in block_start)
    block_has_model = np.array(
        [
            train.shape[0] >= config.min_train_samples and np.unique(sample_label[train]).shape[0] >= 2
            for train in block_train
        ],
        dtype=bool,
    )
    return SymbolTrainingPlan(
        symbol=symbol,
        bar_ts=bar_ts,
        bar_block=bar_block,
        sample_bars=sample_bars,
        sample_t1=sample_t1,
        sample_label=sample_label,
        block_start=block_start,
        block_window=schedule.block_window,
        block_train=block_train,
        block_test=tuple(
            np.arange(sample_edges[k], sample_edges[k + 1], dtype=np.int64) for k in range(n_blocks)
        ),
        block_bars=tuple(np.arange(bar_edges[k], bar_edges[k + 1], dtype=np.int64) for k in range(n_blocks)),
        block_has_model=block_has_model,
    )


def _prepare(
    features: pl.DataFrame,
    labels: pl.DataFrame,
    *,
    feature_columns: Sequence[str],
    config: SignalConfig,
    primary_horizon: int,
    window_starts: Mapping[str, datetime],
) -> dict[str, _SymbolData]:
    columns = _check_features(features, feature_columns)
    primary = _primary_labels(labels, primary_horizon=primary_horizon)
    schedule = _schedule(
        features, window_starts=window_starts, refit_every_sessions=config.refit_every_sessions
    )
    label_symbols = set(primary["symbol"].unique().to_list())
    prepared: dict[str, _SymbolData] = {}
    for symbol in sorted(str(value) for value in features["symbol"].unique().to_list()):
        if symbol not in label_symbols:
            message = f"symbol {symbol} has features but no labels at the primary horizon {primary_horizon}"
            raise ValueError(message)
        rows = (
            features.filter(pl.col("symbol") == symbol)
            .with_columns(pl.col("ts").dt.convert_time_zone("UTC").dt.cast_time_unit("ns"))
            .sort("ts")
        )
        symbol_labels = primary.filter(pl.col("symbol") == symbol).drop("symbol")
        joined = rows.select("ts", *columns).join(symbol_labels, on="ts", how="left")
        plan = _symbol_plan(symbol, joined, schedule=schedule, config=config)
        prepared[symbol] = _SymbolData(plan, joined.select(columns).cast(pl.Float64).to_numpy())
    return prepared


def training_plan(
    features: pl.DataFrame,
    labels: pl.DataFrame,
    *,
    feature_columns: Sequence[str],
    config: SignalConfig = SignalConfig(),
    primary_horizon: int,
    window_starts: Mapping[str, datetime] = _NO_WINDOWS,
) -> dict[str, SymbolTrainingPlan]:
    """The per-symbol plan :func:`causal_signal` fits by: samples, blocks, their training and predicted sets.

    Same arguments as :func:`causal_signal` (without the seed) and the same input errors, except that a
    last block without a model is not an error here; see the module docstring.
    """
    prepared = _prepare(
        features,
        labels,
        feature_columns=feature_columns,
        config=config,
        primary_horizon=primary_horizon,
        window_starts=window_starts,
    )
    return {symbol: data.plan for symbol, data in prepared.items()}


# ------------------------------------------------------------------------------------------------------------
# Models
# ------------------------------------------------------------------------------------------------------------


def _derived_seed(seed: int, symbol: str, stream: int, block: int) -> int:
    """Seed of one model: the primary or meta (``stream``) model of ``block`` for ``symbol``."""
    sequence = np.random.SeedSequence(entropy=seed, spawn_key=(zlib.crc32(symbol.encode()), stream, block))
    return int(sequence.generate_state(1, dtype=np.uint64)[0] % (2**63))


def _empty_linear(in_features: int, out_features: int) -> torch.nn.Linear:
    """An uninitialized float64 CPU linear layer, built without touching the global RNG."""
    layer = torch.nn.Linear(in_features, out_features, dtype=torch.float64, device="meta")
    return layer.to_empty(device="cpu")


def _build_model(
    n_features: int, n_classes: int, *, kind: str, hidden_units: int, prior: np.ndarray, seed: int
) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    log_prior = torch.from_numpy(np.log(prior))
    # Layers are built on the meta device (no memory, no draw from the caller's global RNG), then
    # materialized and initialized from the seeded generator only.
    if kind == "logistic":
        layer = _empty_linear(n_features, n_classes)
        with torch.no_grad():
            layer.weight.zero_()
            layer.bias.copy_(log_prior)
        return layer
    hidden = _empty_linear(n_features, hidden_units)
    output = _empty_linear(hidden_units, n_classes)
    with torch.no_grad():
        for layer in (hidden, output):
            bound = 1.0 / math.sqrt(layer.in_features)
            torch.nn.init.uniform_(layer.weight, -bound, bound, generator=generator)
        hidden_bound = 1.0 / math.sqrt(hidden.in_features)
        torch.nn.init.uniform_(hidden.bias, -hidden_bound, hidden_bound, generator=generator)
        output.bias.copy_(log_prior)
    return torch.nn.Sequential(hidden, torch.nn.ReLU(), output)


def _smoothed_prior(y: np.ndarray, n_classes: int) -> np.ndarray:
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    return (counts + 1.0) / (counts.sum() + n_classes)


_Fitted = tuple[torch.nn.Module, np.ndarray, np.ndarray]
"""A fitted model with the standardization mean and std of its training rows."""


def _fit(
    train_x: np.ndarray,
    train_y: np.ndarray,
    *,
    n_classes: int,
    kind: str,
    config: SignalConfig,
    seed: int,
) -> _Fitted:
    """Standardize on the training rows and fit; return the model and the standardization mean and std."""
    mean = train_x.mean(axis=0)
    std = train_x.std(axis=0)
    std = np.where(std > _STD_FLOOR, std, 1.0)
    inputs = torch.from_numpy((train_x - mean) / std)
    targets = torch.from_numpy(train_y.astype(np.int64))
    model = _build_model(
        train_x.shape[1],
        n_classes,
        kind=kind,
        hidden_units=config.hidden_units,
        prior=_smoothed_prior(train_y, n_classes),
        seed=seed,
    )
    weights = [parameter for name, parameter in model.named_parameters() if name.endswith("weight")]
    loss_function = torch.nn.CrossEntropyLoss()

    def objective() -> torch.Tensor:
        penalty = sum((weight * weight).sum() for weight in weights)
        return loss_function(model(inputs), targets) + 0.5 * config.weight_decay * penalty

    if kind == "logistic":
        optimizer: torch.optim.Optimizer = torch.optim.LBFGS(
            model.parameters(),
            lr=1.0,
            max_iter=config.epochs,
            history_size=20,
            tolerance_grad=1e-6,
            tolerance_change=1e-9,
            line_search_fn="strong_wolfe",
        )

        def closure() -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            loss = objective()
            loss.backward()
            return loss

        optimizer.step(closure)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        for _ in range(config.epochs):
            optimizer.zero_grad(set_to_none=True)
            objective().backward()
            optimizer.step()
    return model, mean, std


def _torch_probabilities(
    model: torch.nn.Module, mean: np.ndarray, std: np.ndarray, predict_x: np.ndarray
) -> np.ndarray:
    with torch.no_grad():
        logits = model(torch.from_numpy((predict_x - mean) / std))
        return torch.softmax(logits, dim=1).numpy().astype(np.float64)


def _numpy_weights(model: torch.nn.Module, mean: np.ndarray, std: np.ndarray) -> "SymbolSignalModel":
    """The fitted model's linear layers (in forward order) and standardization as numpy arrays."""
    layers = [module for module in model.modules() if isinstance(module, torch.nn.Linear)]
    return SymbolSignalModel(
        mean=mean,
        std=std,
        weights=tuple(layer.weight.detach().numpy().astype(np.float64) for layer in layers),
        biases=tuple(layer.bias.detach().numpy().astype(np.float64) for layer in layers),
    )


# ------------------------------------------------------------------------------------------------------------
# Scores
# ------------------------------------------------------------------------------------------------------------


def _scores(probabilities: np.ndarray, y: np.ndarray) -> dict[str, float | None]:
    """Log loss, accuracy and balanced accuracy (mean recall over the classes in ``y``); None when empty."""
    if y.shape[0] == 0:
        return dict.fromkeys(_SCORE_KEYS)
    clipped = np.clip(probabilities[np.arange(y.shape[0]), y], _PROBABILITY_FLOOR, 1.0)
    predicted = probabilities.argmax(axis=1)
    recalls = [float(np.mean(predicted[y == value] == value)) for value in np.unique(y)]
    return {
        "log_loss": float(-np.mean(np.log(clipped))),
        "accuracy": float(np.mean(predicted == y)),
        "balanced_accuracy": float(np.mean(recalls)),
    }


def _correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.shape[0] < 2 or np.std(a) == 0 or np.std(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


@dataclass(frozen=True)
class _Scored:
    """Walk-forward samples to score: probabilities, baseline probabilities, class index, signal, label."""

    probabilities: np.ndarray
    baseline: np.ndarray
    y: np.ndarray
    signal: np.ndarray
    label: np.ndarray

    def subset(self, mask: np.ndarray) -> "_Scored":
        return _Scored(
            self.probabilities[mask], self.baseline[mask], self.y[mask], self.signal[mask], self.label[mask]
        )

    @staticmethod
    def concatenate(parts: Sequence["_Scored"]) -> "_Scored":
        return _Scored(
            *(np.concatenate([getattr(part, field.name) for part in parts]) for field in fields(_Scored))
        )


def _sample_report(scored: _Scored) -> dict[str, Any]:
    """Pooled scores of samples: model and baseline, the signal's correlation and directional accuracy."""
    directional = (scored.label != 0) & (scored.signal != 0)
    return {
        "n": int(scored.y.shape[0]),
        "model": _scores(scored.probabilities, scored.y),
        "baseline": _scores(scored.baseline, scored.y),
        "signal_label_correlation": _correlation(scored.signal, scored.label.astype(np.float64)),
        "directional_accuracy": (
            float(np.mean(np.sign(scored.signal[directional]) == scored.label[directional]))
            if directional.any()
            else None
        ),
        "directional_support": int(directional.sum()),
    }


def _reliability(predicted: np.ndarray, observed: np.ndarray, *, bins: int) -> dict[str, Any]:
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, predicted, side="right") - 1, 0, bins - 1)
    rows = []
    for position in range(bins):
        inside = index == position
        count = int(inside.sum())
        rows.append(
            {
                "lower": float(edges[position]),
                "upper": float(edges[position + 1]),
                "mean_predicted": float(predicted[inside].mean()) if count else None,
                "observed_frequency": float(observed[inside].mean()) if count else None,
                "count": count,
            }
        )
    brier = float(np.mean((predicted - observed) ** 2)) if predicted.shape[0] else None
    return {"bins": rows, "brier": brier}


def _brier(probabilities: np.ndarray, onehot: np.ndarray) -> float | None:
    if probabilities.shape[0] == 0:
        return None
    return float(np.mean(np.sum((probabilities - onehot) ** 2, axis=1)))


def _calibration(scored: _Scored, *, bins: int) -> dict[str, Any]:
    onehot = np.eye(len(_CLASSES))[scored.y]
    report: dict[str, Any] = {"n_samples": int(scored.y.shape[0])}
    for name, column in (("up", 2), ("down", 0)):
        entry = _reliability(scored.probabilities[:, column], onehot[:, column], bins=bins)
        entry["brier_baseline"] = _brier(scored.baseline[:, [column]], onehot[:, [column]])
        report[name] = entry
    report["brier_multiclass"] = _brier(scored.probabilities, onehot)
    report["brier_multiclass_baseline"] = _brier(scored.baseline, onehot)
    return report


def _classification_report(predicted: np.ndarray, actual: np.ndarray) -> dict[str, Any]:
    true_positive = int(np.sum(predicted & actual))
    predicted_positive = int(predicted.sum())
    actual_positive = int(actual.sum())
    precision = true_positive / predicted_positive if predicted_positive else None
    recall = true_positive / actual_positive if actual_positive else None
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision is not None and recall is not None and precision + recall > 0
        else None
    )
    return {
        "threshold": _META_THRESHOLD,
        "support": int(actual.shape[0]),
        "base_rate": float(actual.mean()) if actual.shape[0] else None,
        "predicted_positive": predicted_positive,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


# ------------------------------------------------------------------------------------------------------------
# The signal
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SymbolOutcome:
    probabilities: np.ndarray
    """(bars, 3) class probabilities; NaN on warm-up rows."""
    signal: np.ndarray
    """(bars,) ``P(+1) - P(-1)`` clipped to [-1, 1]; exactly 0.0 on warm-up rows."""
    sample_baseline: np.ndarray
    """(samples, 3) the class prior of the sample's block's training labels; NaN on warm-up samples."""
    forward: SymbolSignalModel


def _require_forward_model(plan: SymbolTrainingPlan, *, config: SignalConfig) -> None:
    """Raise ``ConfigError`` when the last block is a warm-up block: new bars would have no model."""
    last = plan.block_start.shape[0] - 1
    if plan.block_has_model[last]:
        return
    train = plan.block_train[last]
    start = _iso(plan.block_start[last])
    if train.shape[0] < config.min_train_samples:
        message = (
            f"symbol {plan.symbol}: the last block (from {start}) has {train.shape[0]} sample(s) whose "
            f"labels ended before it, fewer than min_train_samples={config.min_train_samples}, so there is "
            "no forward model for new bars: use more labelled history or lower min_train_samples"
        )
    else:
        label = int(np.unique(plan.sample_label[train])[0])
        message = (
            f"symbol {plan.symbol}: every training sample of the last block (from {start}) has label "
            f"{label}; the forward model needs at least two label classes"
        )
    raise ConfigError(message)


def _fit_symbol(data: _SymbolData, *, config: SignalConfig, seed: int) -> _SymbolOutcome:
    """One fit per block with a model, predicting the block's bars; the last block's is the forward model."""
    plan = data.plan
    _require_forward_model(plan, config=config)
    n_classes = len(_CLASSES)
    sample_y = plan.sample_label.astype(np.int64) + 1
    probabilities = np.full((plan.bar_ts.shape[0], n_classes), np.nan)
    sample_baseline = np.full((plan.sample_bars.shape[0], n_classes), np.nan)
    last = plan.block_start.shape[0] - 1
    forward = None
    for block in range(last + 1):
        bars = plan.block_bars[block]
        # A block without bars (possible only for a symbol missing some timestamps) predicts nothing; the
        # last block is fitted regardless: its model serves new bars.
        if not plan.block_has_model[block] or (bars.shape[0] == 0 and block != last):
            continue
        train = plan.block_train[block]
        model, mean, std = _fit(
            data.features[plan.sample_bars[train]],
            sample_y[train],
            n_classes=n_classes,
            kind=config.model,
            config=config,
            seed=_derived_seed(seed, plan.symbol, _PRIMARY_STREAM, block),
        )
        if bars.shape[0]:
            probabilities[bars] = _torch_probabilities(model, mean, std, data.features[bars])
        sample_baseline[plan.block_test[block]] = _smoothed_prior(sample_y[train], n_classes)
        if block == last:
            forward = _numpy_weights(model, mean, std)
    if forward is None:
        message = f"symbol {plan.symbol}: the last block was not fitted"
        raise RuntimeError(message)
    walk_forward = plan.block_has_model[plan.bar_block]
    signal = np.zeros(plan.bar_ts.shape[0])
    signal[walk_forward] = np.clip(
        probabilities[walk_forward, 2] - probabilities[walk_forward, 0], -1.0, 1.0
    )
    return _SymbolOutcome(probabilities, signal, sample_baseline, forward)


def _meta_filter(
    data: _SymbolData, outcome: _SymbolOutcome, *, config: SignalConfig, seed: int
) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Walk-forward meta-label predictions (bool at the threshold) and meta-labels; a reason when skipped."""
    plan = data.plan
    sample_block = plan.bar_block[plan.sample_bars]
    signal = outcome.signal[plan.sample_bars]
    side = np.sign(signal).astype(np.int64)
    signed = np.flatnonzero(plan.block_has_model[sample_block] & (side != 0))
    actual = plan.sample_label[signed].astype(np.int64) == side[signed]
    inputs = np.column_stack([data.features[plan.sample_bars[signed]], np.abs(signal[signed])])
    signed_block = sample_block[signed]
    signed_t1 = plan.sample_t1[signed]
    predicted_parts: list[np.ndarray] = []
    actual_parts: list[np.ndarray] = []
    for block in np.unique(signed_block):
        # Labels ending before the block's start: samples of earlier blocks only (event_ts <= t1).
        train = np.flatnonzero(signed_t1 < plan.block_start[block])
        if train.shape[0] < config.min_train_samples or np.unique(actual[train]).shape[0] < 2:
            continue
        test = np.flatnonzero(signed_block == block)
        fitted = _fit(
            inputs[train],
            actual[train].astype(np.int64),
            n_classes=2,
            kind="logistic",
            config=config,
            seed=_derived_seed(seed, plan.symbol, _META_STREAM, int(block)),
        )
        meta_probability = _torch_probabilities(*fitted, inputs[test])[:, 1]
        predicted_parts.append(meta_probability >= _META_THRESHOLD)
        actual_parts.append(actual[test])
    if not predicted_parts:
        reason = (
            f"no block has min_train_samples={config.min_train_samples} signed walk-forward samples of both "
            "meta-labels whose labels ended before it"
        )
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=bool), reason
    return np.concatenate(predicted_parts), np.concatenate(actual_parts), None


def _scored_samples(plan: SymbolTrainingPlan, outcome: _SymbolOutcome) -> tuple[_Scored, np.ndarray]:
    """The symbol's walk-forward samples to score, and the block of each."""
    sample_block = plan.bar_block[plan.sample_bars]
    walk_forward = plan.block_has_model[sample_block]
    bars = plan.sample_bars[walk_forward]
    scored = _Scored(
        outcome.probabilities[bars],
        outcome.sample_baseline[walk_forward],
        plan.sample_label[walk_forward].astype(np.int64) + 1,
        outcome.signal[bars],
        plan.sample_label[walk_forward],
    )
    return scored, sample_block[walk_forward]


def _block_scores(plan: SymbolTrainingPlan, outcome: _SymbolOutcome) -> list[dict[str, Any]]:
    sample_y = plan.sample_label.astype(np.int64) + 1
    rows = []
    for block, start in enumerate(plan.block_start):
        test = plan.block_test[block]
        fitted = bool(plan.block_has_model[block])
        probabilities = outcome.probabilities[plan.sample_bars[test]]
        rows.append(
            {
                "block": block,
                "start": _iso(start),
                "window": plan.block_window[block],
                "source": "walk_forward" if fitted else "warmup",
                "n_train": int(plan.block_train[block].shape[0]),
                "n_test": int(test.shape[0]),
                "model": _scores(probabilities, sample_y[test]) if fitted else None,
                "baseline": _scores(outcome.sample_baseline[test], sample_y[test]) if fitted else None,
            }
        )
    return rows


def _signal_frame(plan: SymbolTrainingPlan, outcome: _SymbolOutcome) -> pl.DataFrame:
    walk_forward = plan.block_has_model[plan.bar_block]
    return pl.DataFrame(
        {
            "ts": pl.Series(plan.bar_ts).cast(pl.Datetime("ns", "UTC")),
            "symbol": pl.Series([plan.symbol] * plan.bar_ts.shape[0], dtype=pl.Utf8),
            "signal": pl.Series(outcome.signal, dtype=pl.Float64),
            "source": pl.Series(np.where(walk_forward, "walk_forward", "warmup"), dtype=pl.Utf8),
            "block": pl.Series(plan.bar_block, dtype=pl.Int64),
            "window": pl.Series(np.array(plan.block_window, dtype=object)[plan.bar_block], dtype=pl.Utf8),
        }
    )


def causal_signal(
    features: pl.DataFrame,
    labels: pl.DataFrame,
    *,
    feature_columns: Sequence[str],
    config: SignalConfig = SignalConfig(),
    primary_horizon: int,
    window_starts: Mapping[str, datetime] = _NO_WINDOWS,
    seed: int,
) -> SignalResult:
    """Walk-forward signal ``P(+1) - P(-1)`` for every feature bar, with scores, calibration and meta-labels.

    Every bar's signal comes from the model of its block, fitted only on samples whose labels ended before
    the block's refit time (see the module docstring); warm-up rows get 0.0.

    Args:
        features: long feature frame (``ts``, ``symbol``, feature columns), e.g. from
            :func:`market.features.build_features`.
        labels: the frame :func:`market.labeling.label_bars` returns (``symbol``, ``event_ts``, ``horizon``,
            ``t1``, ``label`` are used).
        feature_columns: the feature columns the classifier reads.
        config: classifier and walk-forward settings.
        primary_horizon: the label horizon learned.
        window_starts: named window starts (timezone-aware), e.g. ``{"selection": t, "test": u}``; each one
            is a refit time and names the rows from it to the next start (``"train"`` before the first).
        seed: seeds every model (see the module docstring).

    Returns:
        :class:`SignalResult`; :func:`training_plan` gives which model predicts which bar.

    Raises:
        ConfigError: missing feature columns, no labels at ``primary_horizon``, a last block without a model
            (fewer than ``min_train_samples`` samples whose labels ended before it, or one label class).
        ValueError: empty features, features and labels without common timestamps, non-finite features,
            duplicated keys, a naive window start or one outside the feature bars, a window named
            ``"train"``, two windows starting at the same bar.
        TypeError: a window start that is not a datetime.
    """
    prepared = _prepare(
        features,
        labels,
        feature_columns=feature_columns,
        config=config,
        primary_horizon=primary_horizon,
        window_starts=window_starts,
    )
    for data in prepared.values():
        _require_forward_model(data.plan, config=config)
    outcomes = {symbol: _fit_symbol(data, config=config, seed=seed) for symbol, data in prepared.items()}

    frames = []
    cv_symbols: dict[str, Any] = {}
    calibration: dict[str, Any] = {}
    meta_report: dict[str, Any] = {}
    scored_parts: list[_Scored] = []
    window_parts: list[np.ndarray] = []
    meta_predicted_parts, meta_actual_parts = [], []
    for symbol, data in prepared.items():
        plan, outcome = data.plan, outcomes[symbol]
        frames.append(_signal_frame(plan, outcome))
        scored, sample_block = _scored_samples(plan, outcome)
        cv_symbols[symbol] = {
            "n_samples": int(plan.sample_bars.shape[0]),
            "blocks": _block_scores(plan, outcome),
            "out_of_sample": _sample_report(scored),
        }
        calibration[symbol] = _calibration(scored, bins=config.calibration_bins)
        scored_parts.append(scored)
        window_parts.append(np.array(plan.block_window, dtype=object)[sample_block])
        meta_predicted, meta_actual, meta_skipped = _meta_filter(data, outcome, config=config, seed=seed)
        meta_report[symbol] = {**_classification_report(meta_predicted, meta_actual), "skipped": meta_skipped}
        meta_predicted_parts.append(meta_predicted)
        meta_actual_parts.append(meta_actual)

    pooled = _Scored.concatenate(scored_parts)
    sample_window = np.concatenate(window_parts)
    named = sorted(window_starts.items(), key=lambda item: item[1])
    window_names = [TRAIN_WINDOW, *(name for name, _ in named)]
    windows = {name: _sample_report(pooled.subset(sample_window == name)) for name in window_names}
    calibration["pooled"] = _calibration(pooled, bins=config.calibration_bins)
    pooled_meta = _classification_report(
        np.concatenate(meta_predicted_parts), np.concatenate(meta_actual_parts)
    )
    meta_report = {**pooled_meta, **meta_report, "pooled": pooled_meta}
    model_scores = _scores(pooled.probabilities, pooled.y)
    baseline_scores = _scores(pooled.baseline, pooled.y)
    cv_scores: dict[str, Any] = {
        **model_scores,
        **{f"baseline_{key}": value for key, value in baseline_scores.items()},
        "symbols": cv_symbols,
        "windows": windows,
        "mean": {"model": model_scores, "baseline": baseline_scores},
    }
    forward_model = SignalModel(
        feature_columns=tuple(feature_columns),
        kind=config.model,
        symbols={symbol: outcome.forward for symbol, outcome in outcomes.items()},
    )
    signal_frame = pl.concat(frames, how="vertical").sort("symbol", "ts")
    return SignalResult(signal_frame, cv_scores, calibration, meta_report, forward_model)


def plot_calibration(result: SignalResult, path: Path) -> Path:
    """Reliability diagrams of P(+1) and P(-1) (pooled and per symbol) as one PNG; returns ``path``.

    Each panel plots mean predicted probability against observed frequency per non-empty bin (marker area
    proportional to the bin's share of samples, so thin bins read as such), with the diagonal of perfect
    calibration and the model's and the prior's Brier scores in the legend; groups without walk-forward
    samples are left out. Uses an Agg canvas on a standalone Figure (no pyplot state).
    """
    figure = Figure(figsize=(11, 5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2)
    for panel, (name, title) in zip(axes, (("up", "P(+1)"), ("down", "P(-1)")), strict=True):
        panel.plot([0, 1], [0, 1], color="black", linewidth=0.8, linestyle="--", label="perfect")
        upper = 0.0
        for group, report in result.calibration.items():
            if not report["n_samples"]:
                continue
            entry = report[name]
            bins = [row for row in entry["bins"] if row["count"]]
            predicted = [row["mean_predicted"] for row in bins]
            observed = [row["observed_frequency"] for row in bins]
            total = max(1, sum(row["count"] for row in bins))
            upper = max([upper, *predicted, *observed])
            pooled = group == "pooled"
            (line,) = panel.plot(
                predicted,
                observed,
                linewidth=1.0,
                linestyle=":" if pooled else "-",
                color="black" if pooled else None,
                label=f"{group} (Brier {entry['brier']:.4f}, prior {entry['brier_baseline']:.4f})",
            )
            panel.scatter(
                predicted,
                observed,
                s=[8 + 400 * row["count"] / total for row in bins],
                color=line.get_color(),
                alpha=0.6,
            )
        limit = min(1.0, upper * 1.1 + 0.02)
        panel.set_xlim(0, limit)
        panel.set_ylim(0, limit)
        panel.set_xlabel(f"mean predicted {title}")
        panel.set_ylabel("observed frequency")
        panel.set_title(f"Reliability of {title} (walk-forward)")
        panel.legend(fontsize=7, loc="upper left")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=90)
    return path
