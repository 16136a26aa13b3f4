"""Baseline policies over raw observations: flat, buy-and-hold, and the signal rule.

Each is an object with ``predict(observations) -> actions``: raw (unnormalized) float32 observations
``(n, observation size)`` in the layout of :class:`core.spec.AgentSpec` (features, then the two positions in
units), deterministic int64 actions ``(n,)`` out. The validation compares the agent against them; training
kickstarts a fresh policy by cloning the signal rule (:mod:`training.imitation`).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from core.spec import HOLD_ACTION

__all__ = ["BuyAndHoldPolicy", "FlatPolicy", "SignalRulePolicy"]

_HOLD: Final = HOLD_ACTION
_SELL, _STAY, _BUY = 0, 1, 2


def _observations(observations: np.ndarray) -> np.ndarray:
    batch = np.asarray(observations)
    if batch.ndim != 2:
        message = f"observations must be a 2-D array (n, observation size), got shape {batch.shape}"
        raise ValueError(message)
    return batch


def _columns(batch: np.ndarray, columns: tuple[int, int], *, what: str) -> np.ndarray:
    width = batch.shape[1]
    if any(not -width <= column < width for column in columns):
        message = f"{what} {columns} lie outside observations of width {width}"
        raise ValueError(message)
    return batch[:, list(columns)].astype(np.float64)


def _actions(codes: np.ndarray) -> np.ndarray:
    return (3 * codes[:, 0] + codes[:, 1]).astype(np.int64)


def _toward(positions: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-ticker codes moving each position one ladder step toward its target (hold when there)."""
    return np.where(positions < targets, _BUY, np.where(positions > targets, _SELL, _STAY))


class FlatPolicy:
    """Never trades: holds both tickers at every step (positions start flat, so they stay flat)."""

    def predict(self, observations: np.ndarray) -> np.ndarray:
        """The hold-both action for every observation."""
        return np.full(_observations(observations).shape[0], _HOLD, dtype=np.int64)


@dataclass(frozen=True)
class BuyAndHoldPolicy:
    """Buys both tickers up to a long unit, then holds (the env flattens at the session's close).

    ``position_columns`` are the observation columns of the two positions in units (the env appends them
    last, hence the default).
    """

    position_columns: tuple[int, int] = (-2, -1)

    def predict(self, observations: np.ndarray) -> np.ndarray:
        """Buy a ticker while its position is below +1, else hold it."""
        batch = _observations(observations)
        positions = _columns(batch, self.position_columns, what="position_columns")
        return _actions(_toward(positions, np.ones_like(positions)))


@dataclass(frozen=True)
class SignalRulePolicy:
    """Follows the signal feature with hysteresis: enters on a strong signal, exits when it turns against it.

    Per ticker, from its signal ``s`` and its current position: a long position is kept while
    ``s >= -exit_threshold`` and a short one while ``s <= exit_threshold``; otherwise (flat, or a position
    whose signal turned) the target is +1 when ``s > entry_threshold``, -1 when ``s < -entry_threshold``, else
    0. Entering only on conviction and exiting only on a reversal keeps a signal that hovers around a single
    threshold from opening and closing a position every few bars, trips whose costs lose money. The position
    is read from the observation, so the rule needs no state of its own. Each step buys or sells one ladder
    step toward the target (the env moves short -> flat -> long one level per order, so reaching the other
    side takes two steps) and holds once there. ``signal_columns`` and ``position_columns`` index the raw
    observation.
    """

    signal_columns: tuple[int, int]
    position_columns: tuple[int, int] = (-2, -1)
    entry_threshold: float = 0.5
    exit_threshold: float = 0.2

    def __post_init__(self) -> None:
        for name in ("entry_threshold", "exit_threshold"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                message = f"{name} must lie in [0, 1] (the signal's range), got {value}"
                raise ValueError(message)

    @classmethod
    def from_feature_names(
        cls,
        feature_names: Sequence[str],
        *,
        signal_feature: str = "signal",
        entry_threshold: float = 0.5,
        exit_threshold: float = 0.2,
    ) -> "SignalRulePolicy":
        """The rule on a market's feature list (``MarketArrays.feature_names``, ``"SYMBOL:feature"``)."""
        columns = [
            index for index, name in enumerate(feature_names) if name.split(":", 1)[-1] == signal_feature
        ]
        if len(columns) != 2:
            message = (
                f"expected one {signal_feature!r} column per ticker in the features, found {len(columns)}"
            )
            raise ValueError(message)
        return cls(
            signal_columns=(columns[0], columns[1]),
            entry_threshold=entry_threshold,
            exit_threshold=exit_threshold,
        )

    def targets(self, observations: np.ndarray) -> np.ndarray:
        """Target position (-1, 0 or +1 units) per ticker, shape (n, 2)."""
        batch = _observations(observations)
        signal = _columns(batch, self.signal_columns, what="signal_columns")
        positions = _columns(batch, self.position_columns, what="position_columns")
        entry = np.where(
            signal > self.entry_threshold, 1.0, np.where(signal < -self.entry_threshold, -1.0, 0.0)
        )
        keep_long = (positions > 0.0) & (signal >= -self.exit_threshold)
        keep_short = (positions < 0.0) & (signal <= self.exit_threshold)
        return np.where(keep_long, 1.0, np.where(keep_short, -1.0, entry))

    def predict(self, observations: np.ndarray) -> np.ndarray:
        """One ladder step per ticker toward :meth:`targets`."""
        batch = _observations(observations)
        positions = _columns(batch, self.position_columns, what="position_columns")
        return _actions(_toward(positions, self.targets(batch)))
