"""Out-of-fold signal for the RL agent: a small classifier of the triple-barrier label, purged cross-fitting.

A classifier (torch; multinomial logistic regression, or a one-hidden-layer MLP) learns the primary-horizon
triple-barrier label (-1/0/+1) from the bar features. Its probability for each bar becomes one more
observation feature for the agent: ``signal = P(+1) - P(-1)`` in [-1, 1]. The rule that governs everything
here: a bar's value never comes from a model that trained on a sample overlapping it.

Design choices:

- **One model per symbol.** Each symbol's samples are one time series whose event times are strictly
  increasing, which is what :class:`validation.splits.PurgedKFold` expects; the two symbols have different
  volatility and (in the planted synthetic market) different predictability, and a per-symbol model never
  has to learn the symbol as a feature. Folds, purging and embargo are computed per symbol.
- **Samples.** A sample is a feature bar with a label at the primary horizon whose ``t1`` is known (events
  with barrier ``"none"`` have no known label and are never trained on). Every feature bar gets a signal,
  samples or not.
- **Training window** (bars with ``ts <= train_end``; every bar when ``train_end`` is None): the samples in
  it are split by ``PurgedKFold(n_splits, times=event_ts, t1=t1, embargo_fraction)``. Fold ``k``'s model
  trains on that fold's purged, embargoed training indices, minus any sample whose ``t1`` is after
  ``train_end`` (its label reads the validation window), and predicts the fold's test samples
  (``source="out_of_fold"``, ``fold=k``). Every training-window bar that is not a sample (volatility
  warm-up, a label filtered out, an unresolved label at the end) is predicted by the fold of the last sample
  at or before it (fold 0 before the first sample). No training sample's span ``[event_ts, t1]`` of that
  fold contains the bar: samples starting earlier end before the fold's first test event or are purged, and
  no sample starts between the bar and the next fold's first event.
- **Validation window** (``ts > train_end``): ``source="forward"``, ``fold`` null, predicted by one model
  fit on every training-window sample whose ``t1 <= train_end``: the production signal for new bars, from
  a model trained on all past data the agent's training window allows.
- **Forward model for new bars**: the forward model is always fitted (on every sample when ``train_end``
  is None, where no bar is forward) and returned as :class:`SignalModel` (``SignalResult.forward_model``):
  numpy weights and standardization per symbol, JSON-serializable, whose numpy forward pass equals the
  torch model's output up to float rounding. It gives bars never seen here (synthetic stress scenarios,
  live bars) the production signal.
- **Standardization** uses the training samples' mean and standard deviation of each model only.
- **Fitting**: full batch, minimizing the mean cross-entropy plus ``weight_decay / 2`` times the squared
  weights (not the biases). The logistic model is convex: L-BFGS with a strong-Wolfe line search runs up to
  ``epochs`` iterations and stops at convergence (typically 10-30), so it reaches the unique optimum and
  ``learning_rate`` is not used. The MLP runs ``epochs`` Adam steps at ``learning_rate``. Biases start at the
  log class prior, logistic weights at zero, MLP weights from a seeded generator. :func:`training_plan`
  exposes which samples train which model.
- **Baseline**: the class prior of the fold's training labels, Laplace-smoothed (``(count + 1) / (n + 3)``)
  so that a class missing from training does not give an infinite log loss.
- **Meta-labels** (AFML 3.6): on the out-of-fold samples, the primary side is the sign of the signal (signal
  0 skipped) and the meta-label is 1 when the label equals the side (the profit-take barrier in that
  direction was touched first), else 0. A logistic filter on the features plus ``|signal|`` is cross-fitted
  with the same purged scheme (training samples with ``t1 > train_end`` dropped) and reported at threshold
  0.5. Known limitation: ``|signal|`` of a filter training sample came from a primary model that may have
  trained on the filter's test samples (second-order leakage of stacking); the report is optimistic by that
  much. The filter is a report only; it changes no signal.
- **Determinism**: seeds derive from ``seed`` and the symbol name (CRC-32) and the model index; on CPU the
  same inputs, seed and thread count give identical output: the fits use only dense CPU operations (linear
  layers, cross-entropy, L-BFGS/Adam on the full batch), which are deterministic there. No global torch
  setting is changed: ``torch.use_deterministic_algorithms`` is not switched on because its first call
  imports torch's compiler stack (about 0.8 s) and would guard nothing these operations need; thread
  settings are left to the caller.
"""

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import polars as pl
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict, Field

from stairways.errors import ConfigError
from validation.splits import PurgedKFold

__all__ = [
    "SIGNAL_COLUMNS",
    "SignalConfig",
    "SignalModel",
    "SignalResult",
    "SymbolSignalModel",
    "SymbolTrainingPlan",
    "out_of_fold_signal",
    "plot_calibration",
    "training_plan",
]

SIGNAL_COLUMNS: Final[tuple[str, ...]] = ("ts", "symbol", "signal", "source", "fold")
_CLASSES: Final[tuple[int, ...]] = (-1, 0, 1)
_LABEL_COLUMNS: Final[tuple[str, ...]] = ("symbol", "event_ts", "horizon", "t1", "label")
_FORWARD: Final = -1
_PROBABILITY_FLOOR: Final = 1e-15
_STD_FLOOR: Final = 1e-12
_META_THRESHOLD: Final = 0.5


class SignalConfig(BaseModel):
    """The signal classifier and its purged cross-validation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: Literal["logistic", "mlp"] = Field(
        default="logistic",
        description="'logistic': multinomial logistic regression; 'mlp': one ReLU hidden layer.",
    )
    hidden_units: int = Field(default=16, ge=1, description="Hidden units of the MLP (model 'mlp' only).")
    n_splits: int = Field(default=5, ge=2, description="Contiguous test folds of the purged k-fold.")
    embargo_fraction: float = Field(
        default=0.01,
        ge=0.0,
        lt=1.0,
        description="Samples embargoed after each test fold, as a share of the symbol's samples.",
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
        default=1e-3,
        ge=0.0,
        description="L2 penalty: weight_decay / 2 times the squared weights (not the biases) is added to the "
        "mean cross-entropy.",
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

    It is the model that predicts the validation window (fit on every training-window sample whose label
    ends by ``train_end``; every sample when ``train_end`` is None). :meth:`predict` gives the same signal
    as that torch model up to float rounding (about 1e-12), so new bars (e.g. synthetic stress scenarios)
    get the production signal. :meth:`to_dict` / :meth:`from_dict` round-trip it through JSON exactly.
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
    """Outcome of :func:`out_of_fold_signal`."""

    signal: pl.DataFrame
    """Every feature bar: ``ts``, ``symbol``, ``signal`` (Float64 in [-1, 1]), ``source`` (``"out_of_fold"``
    or ``"forward"``), ``fold`` (Int64, null for forward); sorted by symbol, ts."""
    cv_scores: dict[str, Any]
    """``symbols[symbol]``: per-fold (``folds``) and mean log loss, accuracy and balanced accuracy of the
    model and of the class-prior baseline on the test samples, the scores pooled over all out-of-fold
    samples, the signal's correlation with the label and its directional accuracy (sign of the signal vs a
    non-zero label). ``mean``: over all folds of all symbols. The same means also sit at the top level as
    flat numbers (``log_loss``, ``accuracy``, ``balanced_accuracy``, ``baseline_log_loss``, ...) for metric
    logging."""
    calibration: dict[str, Any]
    """Per symbol and ``pooled``: reliability bins for P(+1) (``up``) and P(-1) (``down``) with mean
    predicted probability, observed frequency and count, their Brier scores, the baseline's Brier scores and
    the multiclass Brier score; over out-of-fold samples."""
    meta_report: dict[str, Any]
    """Per symbol and ``pooled``: out-of-fold precision, recall, F1 of the meta-label filter at
    ``threshold``, the base rate (share of meta-label 1), support and predicted positives (None where
    undefined, e.g. precision with no predicted positive); a symbol's ``skipped`` gives the reason when its
    filter could not be cross-fitted. The pooled figures also sit at the top level as flat numbers."""
    forward_model: SignalModel
    """The forward model of every symbol as numpy arrays: it predicts the validation window's bars and any
    new bars (:meth:`SignalModel.predict`)."""


@dataclass(frozen=True)
class SymbolTrainingPlan:
    """Which samples train which model for one symbol: the mechanism that keeps the signal out of fold.

    Bars are the symbol's feature rows in time order; samples are positions into them; fold training sets
    are positions into the samples.
    """

    symbol: str
    bar_ts: np.ndarray
    """int64 nanoseconds since the epoch (UTC) of every feature bar, increasing."""
    sample_bars: np.ndarray
    """Bar positions of the cross-validation samples (training window, resolved primary-horizon label)."""
    sample_t1: np.ndarray
    """int64 nanoseconds of each sample's label end ``t1``."""
    sample_label: np.ndarray
    """int8 label (-1/0/+1) of each sample."""
    bar_fold: np.ndarray
    """int64 fold whose model predicts each bar; -1 for forward bars (``ts > train_end``)."""
    fold_test: tuple[np.ndarray, ...]
    """Per fold, the sample positions it tests (``PurgedKFold`` test indices)."""
    fold_train: tuple[np.ndarray, ...]
    """Per fold, the sample positions its model trains on: ``PurgedKFold`` training indices whose
    ``t1 <= train_end``."""
    forward_train: np.ndarray
    """Sample positions the forward model trains on: every sample with ``t1 <= train_end``."""


# ------------------------------------------------------------------------------------------------------------
# Input checks and the training plan
# ------------------------------------------------------------------------------------------------------------


def _ticks(series: pl.Series) -> np.ndarray:
    utc = series.dt.convert_time_zone("UTC").dt.cast_time_unit("ns")
    return utc.to_physical().to_numpy().astype(np.int64)


def _train_end_ticks(train_end: datetime | None) -> int | None:
    if train_end is None:
        return None
    if train_end.tzinfo is None or train_end.utcoffset() is None:
        message = f"train_end must be timezone-aware (bars are UTC), got naive {train_end.isoformat()}"
        raise ValueError(message)
    return int(pl.Series([train_end]).dt.cast_time_unit("ns").to_physical()[0])


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
class _SymbolData:
    plan: SymbolTrainingPlan
    features: np.ndarray


def _symbol_plan(
    symbol: str,
    joined: pl.DataFrame,
    *,
    train_end: int | None,
    config: SignalConfig,
) -> SymbolTrainingPlan:
    """Training plan of one symbol from its feature rows left-joined with its primary labels."""
    bar_ts = _ticks(joined["ts"])
    if joined["label"].null_count() == joined.height:
        message = (
            f"symbol {symbol}: features and labels share no timestamps at the primary horizon; are they "
            "computed from the same bars?"
        )
        raise ValueError(message)
    in_window = np.ones(bar_ts.shape[0], dtype=bool) if train_end is None else bar_ts <= train_end
    resolved = (joined["t1"].is_not_null() & joined["label"].is_not_null()).to_numpy()
    sample_bars = np.flatnonzero(in_window & resolved).astype(np.int64)
    if sample_bars.shape[0] < config.n_splits:
        message = (
            f"symbol {symbol}: {sample_bars.shape[0]} labelled sample(s) in the training window, fewer than "
            f"n_splits={config.n_splits}; move train_end later or use more data"
        )
        raise ConfigError(message)
    sample_t1 = _ticks(joined["t1"].gather(sample_bars))
    sample_label = joined["label"].gather(sample_bars).cast(pl.Int8).to_numpy()
    classes = np.unique(sample_label)
    if classes.shape[0] < 2:
        message = (
            f"symbol {symbol}: every training sample has label {int(classes[0])}; the classifier needs at "
            "least two classes"
        )
        raise ConfigError(message)

    trainable = np.ones(sample_bars.shape[0], dtype=bool) if train_end is None else sample_t1 <= train_end
    splitter = PurgedKFold(
        config.n_splits,
        times=bar_ts[sample_bars],
        t1=sample_t1,
        embargo_fraction=config.embargo_fraction,
    )
    fold_test: list[np.ndarray] = []
    fold_train: list[np.ndarray] = []
    for fold, (train, test) in enumerate(splitter.split(sample_bars)):
        train = train[trainable[train]]
        if train.shape[0] == 0:
            message = (
                f"symbol {symbol}: fold {fold} has no training samples left after purging and the embargo; "
                "lower n_splits or embargo_fraction, or use more data"
            )
            raise ConfigError(message)
        fold_test.append(test)
        fold_train.append(train)
    forward_train = np.flatnonzero(trainable).astype(np.int64)

    sample_fold = np.empty(sample_bars.shape[0], dtype=np.int64)
    for fold, test in enumerate(fold_test):
        sample_fold[test] = fold
    preceding = np.searchsorted(sample_bars, np.arange(bar_ts.shape[0]), side="right") - 1
    bar_fold = np.where(preceding >= 0, sample_fold[np.maximum(preceding, 0)], 0)
    bar_fold[~in_window] = _FORWARD
    if (~in_window).any() and forward_train.shape[0] == 0:
        message = f"symbol {symbol}: no sample's label ends by train_end; the forward model has no data"
        raise ConfigError(message)
    return SymbolTrainingPlan(
        symbol=symbol,
        bar_ts=bar_ts,
        sample_bars=sample_bars,
        sample_t1=sample_t1,
        sample_label=sample_label,
        bar_fold=bar_fold.astype(np.int64),
        fold_test=tuple(fold_test),
        fold_train=tuple(fold_train),
        forward_train=forward_train,
    )


def _prepare(
    features: pl.DataFrame,
    labels: pl.DataFrame,
    *,
    feature_columns: Sequence[str],
    config: SignalConfig,
    primary_horizon: int,
    train_end: datetime | None,
) -> dict[str, _SymbolData]:
    columns = _check_features(features, feature_columns)
    primary = _primary_labels(labels, primary_horizon=primary_horizon)
    end = _train_end_ticks(train_end)
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
        plan = _symbol_plan(symbol, joined, train_end=end, config=config)
        prepared[symbol] = _SymbolData(plan, joined.select(columns).cast(pl.Float64).to_numpy())
    return prepared


def training_plan(
    features: pl.DataFrame,
    labels: pl.DataFrame,
    *,
    feature_columns: Sequence[str],
    config: SignalConfig = SignalConfig(),
    primary_horizon: int,
    train_end: datetime | None = None,
) -> dict[str, SymbolTrainingPlan]:
    """The per-symbol plan :func:`out_of_fold_signal` fits by: samples, folds, training sets, forward set.

    Same arguments and errors as :func:`out_of_fold_signal` (without the seed); see the module docstring.
    """
    prepared = _prepare(
        features,
        labels,
        feature_columns=feature_columns,
        config=config,
        primary_horizon=primary_horizon,
        train_end=train_end,
    )
    return {symbol: data.plan for symbol, data in prepared.items()}


# ------------------------------------------------------------------------------------------------------------
# Models
# ------------------------------------------------------------------------------------------------------------


def _derived_seed(seed: int, symbol: str, model_index: int) -> int:
    sequence = np.random.SeedSequence(entropy=seed, spawn_key=(zlib.crc32(symbol.encode()), model_index))
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


def _fit(
    train_x: np.ndarray,
    train_y: np.ndarray,
    *,
    n_classes: int,
    kind: str,
    config: SignalConfig,
    seed: int,
) -> tuple[torch.nn.Module, np.ndarray, np.ndarray]:
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


def _fit_predict(
    train_x: np.ndarray,
    train_y: np.ndarray,
    predict_x: np.ndarray,
    *,
    n_classes: int,
    kind: str,
    config: SignalConfig,
    seed: int,
) -> np.ndarray:
    """Standardize on the training rows, fit, and return class probabilities for ``predict_x``."""
    model, mean, std = _fit(train_x, train_y, n_classes=n_classes, kind=kind, config=config, seed=seed)
    return _torch_probabilities(model, mean, std, predict_x)


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


def _scores(probabilities: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Log loss, accuracy and balanced accuracy (mean recall over the classes present in ``y``)."""
    clipped = np.clip(probabilities[np.arange(y.shape[0]), y], _PROBABILITY_FLOOR, 1.0)
    predicted = probabilities.argmax(axis=1)
    recalls = [float(np.mean(predicted[y == value] == value)) for value in np.unique(y)]
    return {
        "log_loss": float(-np.mean(np.log(clipped))),
        "accuracy": float(np.mean(predicted == y)),
        "balanced_accuracy": float(np.mean(recalls)),
    }


def _mean_scores(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}


def _correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.shape[0] < 2 or np.std(a) == 0 or np.std(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


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
    return {"bins": rows, "brier": float(np.mean((predicted - observed) ** 2))}


def _calibration(
    probabilities: np.ndarray, baseline: np.ndarray, y: np.ndarray, *, bins: int
) -> dict[str, Any]:
    onehot = np.eye(len(_CLASSES))[y]
    report: dict[str, Any] = {"n_samples": int(y.shape[0])}
    for name, column in (("up", 2), ("down", 0)):
        entry = _reliability(probabilities[:, column], onehot[:, column], bins=bins)
        entry["brier_baseline"] = float(np.mean((baseline[:, column] - onehot[:, column]) ** 2))
        report[name] = entry
    report["brier_multiclass"] = float(np.mean(np.sum((probabilities - onehot) ** 2, axis=1)))
    report["brier_multiclass_baseline"] = float(np.mean(np.sum((baseline - onehot) ** 2, axis=1)))
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
    sample_baseline: np.ndarray
    fold_scores: list[dict[str, Any]]
    meta_predicted: np.ndarray
    meta_actual: np.ndarray
    forward: "SymbolSignalModel"


def _meta_filter(
    data: _SymbolData,
    probabilities: np.ndarray,
    *,
    config: SignalConfig,
    train_end: int | None,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Out-of-fold meta-label predictions (bool at the threshold) and meta-labels; a reason when skipped."""
    plan = data.plan
    signal = probabilities[plan.sample_bars, 2] - probabilities[plan.sample_bars, 0]
    side = np.sign(signal).astype(np.int64)
    taken = np.flatnonzero(side != 0)
    actual = plan.sample_label[taken].astype(np.int64) == side[taken]
    if taken.shape[0] < config.n_splits:
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=bool), "fewer signed samples than folds"
    bars = plan.sample_bars[taken]
    t1 = plan.sample_t1[taken]
    inputs = np.column_stack([data.features[bars], np.abs(signal[taken])])
    trainable = np.ones(taken.shape[0], dtype=bool) if train_end is None else t1 <= train_end
    splitter = PurgedKFold(
        config.n_splits, times=plan.bar_ts[bars], t1=t1, embargo_fraction=config.embargo_fraction
    )
    meta_probability = np.empty(taken.shape[0])
    for fold, (train, test) in enumerate(splitter.split(inputs)):
        train = train[trainable[train]]
        if train.shape[0] == 0:
            return np.zeros(0, dtype=bool), np.zeros(0, dtype=bool), f"fold {fold} has no training samples"
        meta_probability[test] = _fit_predict(
            inputs[train],
            actual[train].astype(np.int64),
            inputs[test],
            n_classes=2,
            kind="logistic",
            config=config,
            seed=_derived_seed(seed, plan.symbol, 1000 + fold),
        )[:, 1]
    return meta_probability >= _META_THRESHOLD, actual, None


def _fit_symbol(
    data: _SymbolData, *, config: SignalConfig, train_end: int | None, seed: int
) -> tuple[_SymbolOutcome, str | None]:
    plan = data.plan
    n_classes = len(_CLASSES)
    sample_y = plan.sample_label.astype(np.int64) + 1
    probabilities = np.full((plan.bar_ts.shape[0], n_classes), np.nan)
    sample_baseline = np.empty((plan.sample_bars.shape[0], n_classes))
    fold_scores = []
    for fold, (train, test) in enumerate(zip(plan.fold_train, plan.fold_test, strict=True)):
        predicted_bars = np.flatnonzero(plan.bar_fold == fold)
        probabilities[predicted_bars] = _fit_predict(
            data.features[plan.sample_bars[train]],
            sample_y[train],
            data.features[predicted_bars],
            n_classes=n_classes,
            kind=config.model,
            config=config,
            seed=_derived_seed(seed, plan.symbol, fold),
        )
        prior = _smoothed_prior(sample_y[train], n_classes)
        sample_baseline[test] = prior
        test_probabilities = probabilities[plan.sample_bars[test]]
        fold_scores.append(
            {
                "fold": fold,
                "n_train": int(train.shape[0]),
                "n_test": int(test.shape[0]),
                "model": _scores(test_probabilities, sample_y[test]),
                "baseline": _scores(np.broadcast_to(prior, test_probabilities.shape), sample_y[test]),
            }
        )
    # The forward model is fitted even when no bar is forward (train_end None): it is the model that
    # predicts new bars (SignalResult.forward_model), e.g. the synthetic stress scenarios.
    forward_model, forward_mean, forward_std = _fit(
        data.features[plan.sample_bars[plan.forward_train]],
        sample_y[plan.forward_train],
        n_classes=n_classes,
        kind=config.model,
        config=config,
        seed=_derived_seed(seed, plan.symbol, config.n_splits),
    )
    forward_bars = np.flatnonzero(plan.bar_fold == _FORWARD)
    if forward_bars.shape[0]:
        probabilities[forward_bars] = _torch_probabilities(
            forward_model, forward_mean, forward_std, data.features[forward_bars]
        )
    meta_predicted, meta_actual, skipped = _meta_filter(
        data, probabilities, config=config, train_end=train_end, seed=seed
    )
    outcome = _SymbolOutcome(
        probabilities,
        sample_baseline,
        fold_scores,
        meta_predicted,
        meta_actual,
        _numpy_weights(forward_model, forward_mean, forward_std),
    )
    return outcome, skipped


def out_of_fold_signal(
    features: pl.DataFrame,
    labels: pl.DataFrame,
    *,
    feature_columns: Sequence[str],
    config: SignalConfig = SignalConfig(),
    primary_horizon: int,
    train_end: datetime | None = None,
    seed: int,
) -> SignalResult:
    """Cross-fitted signal ``P(+1) - P(-1)`` for every feature bar, with scores, calibration and meta-labels.

    Args:
        features: long feature frame (``ts``, ``symbol``, feature columns), e.g. from
            :func:`market.features.build_features`.
        labels: the frame :func:`market.labeling.label_bars` returns (``symbol``, ``event_ts``, ``horizon``,
            ``t1``, ``label`` are used).
        feature_columns: the feature columns the classifier reads.
        config: classifier and cross-validation settings.
        primary_horizon: the label horizon learned.
        train_end: last timestamp of the agent's training window (timezone-aware); bars after it get the
            forward model's signal. None: every bar is in the training window.
        seed: seeds every model (see the module docstring).

    Returns:
        :class:`SignalResult`; see the module docstring for which model predicts which bar.

    Raises:
        ConfigError: missing feature columns, no labels at ``primary_horizon``, fewer samples than folds, a
            single label class, a fold or the forward model without training samples.
        ValueError: features and labels without common timestamps, non-finite features, duplicated keys,
            a naive ``train_end``.
    """
    prepared = _prepare(
        features,
        labels,
        feature_columns=feature_columns,
        config=config,
        primary_horizon=primary_horizon,
        train_end=train_end,
    )
    end = _train_end_ticks(train_end)
    frames = []
    cv_symbols: dict[str, Any] = {}
    calibration: dict[str, Any] = {}
    meta_report: dict[str, Any] = {}
    pooled_probabilities, pooled_baseline, pooled_y = [], [], []
    pooled_meta_predicted, pooled_meta_actual = [], []
    all_folds: list[dict[str, Any]] = []
    outcomes = {
        symbol: _fit_symbol(data, config=config, train_end=end, seed=seed)
        for symbol, data in prepared.items()
    }
    for symbol, data in prepared.items():
        plan = data.plan
        outcome, meta_skipped = outcomes[symbol]
        signal = np.clip(outcome.probabilities[:, 2] - outcome.probabilities[:, 0], -1.0, 1.0)
        forward = plan.bar_fold == _FORWARD
        frames.append(
            pl.DataFrame(
                {
                    "ts": pl.Series(plan.bar_ts).cast(pl.Datetime("ns", "UTC")),
                    "symbol": pl.Series([symbol] * plan.bar_ts.shape[0], dtype=pl.Utf8),
                    "signal": pl.Series(signal, dtype=pl.Float64),
                    "source": pl.Series(np.where(forward, "forward", "out_of_fold"), dtype=pl.Utf8),
                    "fold": pl.Series(plan.bar_fold, dtype=pl.Int64),
                }
            ).with_columns(
                pl.when(pl.col("source") == "forward").then(None).otherwise(pl.col("fold")).alias("fold")
            )
        )
        sample_probabilities = outcome.probabilities[plan.sample_bars]
        sample_y = plan.sample_label.astype(np.int64) + 1
        sample_signal = signal[plan.sample_bars]
        directional = (plan.sample_label != 0) & (sample_signal != 0)
        cv_symbols[symbol] = {
            "n_samples": int(plan.sample_bars.shape[0]),
            "folds": outcome.fold_scores,
            "mean": {
                "model": _mean_scores([row["model"] for row in outcome.fold_scores]),
                "baseline": _mean_scores([row["baseline"] for row in outcome.fold_scores]),
            },
            "out_of_fold": {
                "model": _scores(sample_probabilities, sample_y),
                "baseline": _scores(outcome.sample_baseline, sample_y),
                "signal_label_correlation": _correlation(sample_signal, plan.sample_label.astype(np.float64)),
                "directional_accuracy": (
                    float(np.mean(np.sign(sample_signal[directional]) == plan.sample_label[directional]))
                    if directional.any()
                    else None
                ),
                "directional_support": int(directional.sum()),
            },
        }
        all_folds.extend(outcome.fold_scores)
        calibration[symbol] = _calibration(
            sample_probabilities, outcome.sample_baseline, sample_y, bins=config.calibration_bins
        )
        pooled_probabilities.append(sample_probabilities)
        pooled_baseline.append(outcome.sample_baseline)
        pooled_y.append(sample_y)
        meta_report[symbol] = _classification_report(outcome.meta_predicted, outcome.meta_actual)
        meta_report[symbol]["skipped"] = meta_skipped
        pooled_meta_predicted.append(outcome.meta_predicted)
        pooled_meta_actual.append(outcome.meta_actual)

    calibration["pooled"] = _calibration(
        np.concatenate(pooled_probabilities),
        np.concatenate(pooled_baseline),
        np.concatenate(pooled_y),
        bins=config.calibration_bins,
    )
    pooled_meta = _classification_report(
        np.concatenate(pooled_meta_predicted), np.concatenate(pooled_meta_actual)
    )
    meta_report = {**pooled_meta, **meta_report, "pooled": pooled_meta}
    mean_model = _mean_scores([row["model"] for row in all_folds])
    mean_baseline = _mean_scores([row["baseline"] for row in all_folds])
    cv_scores: dict[str, Any] = {
        **mean_model,
        **{f"baseline_{key}": value for key, value in mean_baseline.items()},
        "symbols": cv_symbols,
        "mean": {"model": mean_model, "baseline": mean_baseline},
    }
    signal_frame = pl.concat(frames, how="vertical").sort("symbol", "ts")
    forward_model = SignalModel(
        feature_columns=tuple(feature_columns),
        kind=config.model,
        symbols={symbol: outcome.forward for symbol, (outcome, _) in outcomes.items()},
    )
    return SignalResult(signal_frame, cv_scores, calibration, meta_report, forward_model)


def plot_calibration(result: SignalResult, path: Path) -> Path:
    """Reliability diagrams of P(+1) and P(-1) (pooled and per symbol) as one PNG; returns ``path``.

    Each panel plots mean predicted probability against observed frequency per non-empty bin (marker area
    proportional to the bin's share of samples, so thin bins read as such), with the diagonal of perfect
    calibration and the model's and the prior's Brier scores in the legend. Uses an Agg canvas on a
    standalone Figure (no pyplot state).
    """
    figure = Figure(figsize=(11, 5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2)
    for panel, (name, title) in zip(axes, (("up", "P(+1)"), ("down", "P(-1)")), strict=True):
        panel.plot([0, 1], [0, 1], color="black", linewidth=0.8, linestyle="--", label="perfect")
        upper = 0.0
        for group, report in result.calibration.items():
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
        panel.set_title(f"Reliability of {title} (out of fold)")
        panel.legend(fontsize=7, loc="upper left")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=90)
    return path
