"""The forward signal model: fitted classifier weights as numpy arrays, reusable on bars never fitted on.

**Forward model for new bars**: the model of the last walk-forward block (the most recent refit, trained on
every sample whose label ended before it) as :class:`SignalModel` (``SignalResult.forward_model``): numpy
weights and standardization per symbol, JSON-serializable, whose numpy forward pass equals the torch model's
output up to float rounding. It gives bars never seen in fitting (synthetic stress scenarios, live bars) the
production signal. When the last block is a warm-up block there is no forward model, and
:func:`market.signal.walk_forward.causal_signal` raises ``ConfigError`` before fitting anything.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import polars as pl

from market.signal.inputs import check_features

__all__ = ["CLASSES", "SignalModel", "SymbolSignalModel"]

CLASSES: Final[tuple[int, ...]] = (-1, 0, 1)
"""The triple-barrier label classes, in the order of the classifier's outputs."""


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
        if width != len(CLASSES):
            message = f"the last layer must have {len(CLASSES)} outputs (classes -1, 0, +1), got {width}"
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
        columns = check_features(features, self.feature_columns)
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
