"""Out-of-sample scoring of walk-forward samples: scores, calibration and the meta filter's classification.

Report only; nothing is fitted on a block's own labels. Every sample of a walk-forward block is scored
against its label, and against the baseline of the same block: the class prior of the block's training
labels, Laplace-smoothed (``(count + 1) / (n + 3)``) so that a class missing from training does not give an
infinite log loss. Calibration is a reliability table (equal-width probability bins) with Brier scores of
P(+1) and P(-1), and the multiclass Brier score, for the model and for the baseline.
"""

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Final

import numpy as np

from market.signal.model import CLASSES

__all__ = ["Scored", "calibration_report", "classification_report", "prediction_scores", "sample_report"]

_SCORE_KEYS: Final[tuple[str, ...]] = ("log_loss", "accuracy", "balanced_accuracy")
_PROBABILITY_FLOOR: Final = 1e-15


def prediction_scores(probabilities: np.ndarray, y: np.ndarray) -> dict[str, float | None]:
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
class Scored:
    """Walk-forward samples to score: probabilities, baseline probabilities, class index, signal, label."""

    probabilities: np.ndarray
    baseline: np.ndarray
    y: np.ndarray
    signal: np.ndarray
    label: np.ndarray

    def subset(self, mask: np.ndarray) -> "Scored":
        """The samples where ``mask`` is True."""
        return Scored(
            self.probabilities[mask], self.baseline[mask], self.y[mask], self.signal[mask], self.label[mask]
        )

    @staticmethod
    def concatenate(parts: Sequence["Scored"]) -> "Scored":
        """The samples of every part, in order."""
        return Scored(
            *(np.concatenate([getattr(part, field.name) for part in parts]) for field in fields(Scored))
        )


def sample_report(scored: Scored) -> dict[str, Any]:
    """Pooled scores of samples: model and baseline, the signal's correlation and directional accuracy."""
    directional = (scored.label != 0) & (scored.signal != 0)
    return {
        "n": int(scored.y.shape[0]),
        "model": prediction_scores(scored.probabilities, scored.y),
        "baseline": prediction_scores(scored.baseline, scored.y),
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


def calibration_report(scored: Scored, *, bins: int) -> dict[str, Any]:
    """Reliability bins and Brier scores of P(+1) (``up``) and P(-1) (``down``), model and baseline."""
    onehot = np.eye(len(CLASSES))[scored.y]
    report: dict[str, Any] = {"n_samples": int(scored.y.shape[0])}
    for name, column in (("up", 2), ("down", 0)):
        entry = _reliability(scored.probabilities[:, column], onehot[:, column], bins=bins)
        entry["brier_baseline"] = _brier(scored.baseline[:, [column]], onehot[:, [column]])
        report[name] = entry
    report["brier_multiclass"] = _brier(scored.probabilities, onehot)
    report["brier_multiclass_baseline"] = _brier(scored.baseline, onehot)
    return report


def classification_report(predicted: np.ndarray, actual: np.ndarray, *, threshold: float) -> dict[str, Any]:
    """Precision, recall, F1, base rate and support of boolean predictions made at ``threshold``."""
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
        "threshold": threshold,
        "support": int(actual.shape[0]),
        "base_rate": float(actual.mean()) if actual.shape[0] else None,
        "predicted_positive": predicted_positive,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }
