"""The gate's decision record: one :class:`CriterionResult` per criterion and scenario, and the
:class:`GateDecision` that gathers them with the verdict, its reason and the statistics behind it.

Records only: :func:`validation.gate.decide` makes them, :func:`validation.gate_report.gate_report` renders
them, and the registry tags a model version with :meth:`GateDecision.metric_tags`.
"""

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from validation.gate_criteria import NO_CHAMPION_SCENARIO

__all__ = ["CriterionResult", "GateDecision"]


@dataclass(frozen=True)
class CriterionResult:
    """One criterion on one scenario: the measured value, the threshold, and whether it passed and why.

    ``evaluated`` is False when the scenario had no episodes; such a result has ``passed=False`` and does not
    fail the gate by itself (see :mod:`validation.gate`).
    """

    scenario: str
    criterion: str
    metric: str
    value: float | None
    threshold: str
    passed: bool
    reason: str
    evaluated: bool = True


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict, its one-line reason, every criterion result, and the statistics behind them.

    ``statistics``: ``paired`` (comparator -> bootstrap interval of the per-session return difference, in
    percent, with the session count), ``deflated_sharpe`` (the deflated Sharpe ratio record),
    ``candidates_compared``, and ``champion`` (``"none"``, ``"comparable"``, ``"incomparable"`` or
    ``"incomparable, replaced"``).
    """

    passed: bool
    reason: str
    results: tuple[CriterionResult, ...]
    statistics: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable view (NaN values become None)."""
        return {
            "passed": self.passed,
            "reason": self.reason,
            "results": [{**asdict(result), "value": _json_float(result.value)} for result in self.results],
            "statistics": _json_ready(self.statistics),
        }

    def failures(self) -> tuple[CriterionResult, ...]:
        """The evaluated criteria that failed."""
        return tuple(result for result in self.results if result.evaluated and not result.passed)

    def metric_tags(self) -> dict[str, str]:
        """Flat ``gate.<scenario>.<criterion>`` -> measured value (``repr`` of the float), for registry tags.

        A value is ``"nan"`` when NaN, ``"missing"`` when absent, ``"not evaluated"`` for an empty
        scenario; ``beats_champion`` without a champion is ``"no champion"``.
        """
        tags = {}
        for result in self.results:
            if not result.evaluated:
                text = "not evaluated"
            elif result.value is None:
                text = "no champion" if result.scenario == NO_CHAMPION_SCENARIO else "missing"
            elif math.isnan(result.value):
                text = "nan"
            else:
                text = repr(float(result.value))
            tags[f"gate.{result.scenario}.{result.criterion}"] = text
        champion = self.statistics.get("champion")
        if champion is not None:
            tags["gate.champion"] = str(champion)
        deflated = self.statistics.get("deflated_sharpe") or {}
        if "probability" in deflated:
            tags["gate.deflated_sharpe"] = repr(float(deflated["probability"]))
            tags["gate.candidates_compared"] = str(deflated["n_trials"])
        return tags


def _json_float(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _json_ready(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    if isinstance(value, float):
        return _json_float(value)
    return value
