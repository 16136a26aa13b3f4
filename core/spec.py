"""The agent's observation and action spec: one object that builds the spaces and that every reader checks.

The agent trades two tickers. Its **action** is ``Discrete(9)``: ``action = 3 * code_0 + code_1`` with the
per-ticker code 0 = sell, 1 = hold, 2 = buy (:data:`ACTION_MEANINGS`; :data:`HOLD_ACTION`, 4, holds both).
Its **observation** is the market features of both tickers at the decision bar (``SYMBOL:feature`` names, in
the market's order) followed by the :data:`POSITION_COUNT` positions in units, each in ``[-1, 1]``.

:class:`AgentSpec` is that layout for one feature list. The env builds its spaces from it; a checkpoint
records it (``feature_names``, ``observation_shape``, ``action_count``) and :meth:`AgentSpec.mismatch` says
why a saved policy cannot act on tonight's observations; the registry, the assessment and serving read it
back from the checkpoint's meta.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from gymnasium import spaces

__all__ = [
    "ACTION_COLUMN",
    "ACTION_COUNT",
    "ACTION_MEANINGS",
    "CODE_NAMES",
    "HOLD_ACTION",
    "MEANING_COLUMN",
    "POSITION_COUNT",
    "AgentSpec",
    "action_columns",
    "layout_mismatch",
]

CODE_NAMES: Final[tuple[str, ...]] = ("sell", "hold", "buy")
"""Per-ticker action codes 0, 1 and 2."""
ACTION_MEANINGS: Final[tuple[str, ...]] = tuple(
    f"{first}/{second}" for first in CODE_NAMES for second in CODE_NAMES
)
"""``ACTION_MEANINGS[action]`` is ``"<ticker 0 code>/<ticker 1 code>"``."""
ACTION_COUNT: Final[int] = len(ACTION_MEANINGS)
HOLD_ACTION: Final[int] = ACTION_MEANINGS.index("hold/hold")
POSITION_COUNT: Final[int] = 2
"""Positions (in units) appended after the features: the observation's last two columns."""


@dataclass(frozen=True)
class AgentSpec:
    """The observation/action layout of an agent that observes ``feature_names`` (both tickers' features)."""

    feature_names: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "feature_names", tuple(self.feature_names))

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> "AgentSpec":
        """The spec a checkpoint's ``meta.json`` records."""
        return cls(tuple(meta["feature_names"]))

    @property
    def feature_count(self) -> int:
        """Feature columns of the observation (both tickers)."""
        return len(self.feature_names)

    @property
    def observation_size(self) -> int:
        """Features plus the two positions."""
        return self.feature_count + POSITION_COUNT

    @property
    def observation_names(self) -> tuple[str, ...]:
        """Names of the observation's columns: the features, then ``position:0`` and ``position:1``."""
        return (*self.feature_names, *(f"position:{ticker}" for ticker in range(POSITION_COUNT)))

    @property
    def action_count(self) -> int:
        """Always :data:`ACTION_COUNT` (9)."""
        return ACTION_COUNT

    @property
    def position_columns(self) -> tuple[int, int]:
        """Observation columns of the two positions."""
        return (self.feature_count, self.feature_count + 1)

    def observation_space(self) -> spaces.Box:
        """``Box(float32, (observation_size,))``: features unbounded (the largest float32 stands in for
        infinity, which Gymnasium's checker flags), positions in ``[-1, 1]``."""
        bound = np.full(self.observation_size, np.finfo(np.float32).max, dtype=np.float32)
        bound[self.feature_count :] = 1.0
        return spaces.Box(low=-bound, high=bound, dtype=np.float32)

    def action_space(self) -> spaces.Discrete:
        """``Discrete(9)``."""
        return spaces.Discrete(ACTION_COUNT)

    def as_meta(self) -> dict[str, Any]:
        """The fields a checkpoint's ``meta.json`` records for this spec."""
        return {
            "feature_names": list(self.feature_names),
            "observation_shape": [self.observation_size],
            "action_count": ACTION_COUNT,
        }

    def mismatch(self, meta: Mapping[str, Any]) -> str | None:
        """None when a checkpoint with ``meta`` acts on this spec's observations, else the reason it cannot."""
        return layout_mismatch(
            meta,
            observation_size=self.observation_size,
            action_count=ACTION_COUNT,
            feature_names=self.feature_names,
        )

    def decode(self, action: int) -> tuple[str, str]:
        """The per-ticker code names of ``action``."""
        if not 0 <= int(action) < ACTION_COUNT:
            msg = f"action must lie in 0..{ACTION_COUNT - 1}, got {action}"
            raise ValueError(msg)
        first, second = divmod(int(action), 3)
        return CODE_NAMES[first], CODE_NAMES[second]



def layout_mismatch(
    meta: Mapping[str, Any], *, observation_size: int, action_count: int, feature_names: Sequence[str]
) -> str | None:
    """None when the layout a checkpoint's ``meta`` records equals the given one, else the first difference:
    observation size, action count, then the feature list (names and order)."""
    saved_shape = list(meta["observation_shape"])
    if saved_shape != [observation_size]:
        return f"observation shape {saved_shape} differs from [{observation_size}]"
    if meta["action_count"] != action_count:
        return f"action count {meta['action_count']} differs from {action_count}"
    saved = list(meta["feature_names"])
    wanted = list(feature_names)
    if saved == wanted:
        return None
    only_saved = [name for name in saved if name not in wanted]
    only_wanted = [name for name in wanted if name not in saved]
    if only_saved or only_wanted:
        detail = f"only in checkpoint {only_saved[:5]}, only in data {only_wanted[:5]}"
    else:
        detail = "same names in a different order"
    return f"feature list differs ({detail})"


ACTION_COLUMN: Final[str] = "action"
MEANING_COLUMN: Final[str] = "meaning"


def action_columns(actions: Sequence[int] | np.ndarray, symbols: Sequence[str]) -> dict[str, list[Any]]:
    """Actions with their names: ``action`` (the index), ``meaning`` (``"buy/hold"``) and, per symbol, its
    code (``{"NVDA": "buy", "MSFT": "hold"}`` in columns); what the served model answers."""
    if len(symbols) != POSITION_COUNT:
        msg = f"an agent trades {POSITION_COUNT} symbols, got {list(symbols)}"
        raise ValueError(msg)
    indices = [int(action) for action in np.asarray(actions).reshape(-1)]
    if any(not 0 <= action < ACTION_COUNT for action in indices):
        msg = f"actions must lie in 0..{ACTION_COUNT - 1}, got {sorted(set(indices))}"
        raise ValueError(msg)
    columns: dict[str, list[Any]] = {
        ACTION_COLUMN: indices,
        MEANING_COLUMN: [ACTION_MEANINGS[action] for action in indices],
    }
    for position, symbol in enumerate(symbols):
        columns[str(symbol)] = [CODE_NAMES[divmod(action, 3)[position]] for action in indices]
    return columns
