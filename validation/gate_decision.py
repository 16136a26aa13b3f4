"""The gate's decision record: one :class:`CriterionResult` per criterion and scenario, and the
:class:`GateDecision` that gathers them with the verdict, its reason and the statistics behind it.

Records only: :func:`validation.gate.decide` makes them, :func:`validation.gate_report.gate_report` renders
them, and the registry tags a model version with :meth:`GateDecision.summary_tags` (a handful of searchable
tags) and stores :meth:`GateDecision.criteria_record` beside it (every criterion with its value, threshold,
comparison and verdict).
"""

import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "CHAMPION_MARGIN_TAG",
    "CHAMPION_TAG",
    "DEFLATED_SHARPE_TAG",
    "REASON_TAG",
    "TEST_SHARPE_TAG",
    "VERDICT_TAG",
    "CriterionResult",
    "GateDecision",
]

VERDICT_TAG = "gate.verdict"
"""``passed`` or ``failed``."""
REASON_TAG = "gate.reason"
"""The decision's one-line reason, shortened to ``reason_chars``."""
CHAMPION_TAG = "gate.champion"
"""``none``, ``comparable``, ``incomparable`` or ``incomparable, replaced``."""
TEST_SHARPE_TAG = "gate.test_sharpe"
"""The candidate's Sharpe ratio on the paired scenario (the test window's ``held_out/mixed``)."""
CHAMPION_MARGIN_TAG = "gate.champion_margin_pct"
"""Mean per-session return of the candidate minus the champion's on the paired sessions, percent."""
DEFLATED_SHARPE_TAG = "gate.deflated_sharpe"
"""The deflated Sharpe ratio (a probability) of the candidate's test sessions, given the candidates compared."""
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?inf"
_BOUND = re.compile(rf"^(>=|<=|>|<) ({_NUMBER})$")
_RANGE = re.compile(rf"^in \[({_NUMBER}), ({_NUMBER})\]$")
_CHAMPION_BOUND = re.compile(rf"^(>|<) champion ({_NUMBER}) ([-+]) ({_NUMBER})$")
_TRAILING_BOUND = re.compile(rf"(>=|<=|>|<) ({_NUMBER})$")


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

    def summary_tags(self, *, reason_chars: int = 300) -> dict[str, str]:
        """The gate's few searchable model-version tags, every value a short string.

        :data:`VERDICT_TAG` (``passed``/``failed``), :data:`REASON_TAG` (the reason, cut to ``reason_chars``
        with an ellipsis), :data:`CHAMPION_TAG`, and three key figures of the test window:
        :data:`TEST_SHARPE_TAG`, :data:`CHAMPION_MARGIN_TAG` and :data:`DEFLATED_SHARPE_TAG` (4 significant
        digits; ``"nan"``, ``"missing"``, ``"no champion"`` or ``"unavailable"`` when there is no number).
        Every criterion in full is :meth:`criteria_record`.
        """
        reason = self.reason
        if len(reason) > reason_chars:
            reason = reason[: max(0, reason_chars - 1)].rstrip() + "\u2026"
        statistics = self.statistics
        champion = str(statistics.get("champion", "none"))
        paired = (statistics.get("paired") or {}).get("champion")
        if paired is not None:
            margin = _tag_number(paired.get("estimate"))
        else:
            margin = {"comparable": "missing", "none": "no champion"}.get(champion, "incomparable")
        deflated = statistics.get("deflated_sharpe") or {}
        return {
            VERDICT_TAG: "passed" if self.passed else "failed",
            REASON_TAG: reason,
            CHAMPION_TAG: champion,
            TEST_SHARPE_TAG: self._test_sharpe(),
            CHAMPION_MARGIN_TAG: margin,
            DEFLATED_SHARPE_TAG: (
                _tag_number(deflated["probability"]) if "probability" in deflated else "unavailable"
            ),
        }

    def _test_sharpe(self) -> str:
        scenario = self.statistics.get("scenario")
        for result in self.results:
            if result.criterion == "sharpe" and result.scenario == scenario:
                return _tag_number(result.value)
        return "missing"

    def criteria_record(
        self,
        *,
        champion_version: str | None = None,
        scenario_episodes: Mapping[str, float] | None = None,
    ) -> dict[str, Any]:
        """Every criterion and the statistics, JSON-ready: what a model version stores beside its few tags.

        ``criteria`` lists one entry per result: ``scenario``, ``criterion``, ``metric``, the measured
        ``value`` (None when missing or NaN), ``comparison`` (``">="``, ``"<="``, ``">"``, ``"<"``,
        ``"in"``; None for a rule in words) and ``threshold`` (a number, ``[low, high]`` for ``"in"``, the
        champion's figure plus or minus the margin for ``beats_champion``; None when the rule has no
        number), ``rule`` (the threshold as the gate states it), ``verdict`` (``pass``, ``fail`` or ``not
        evaluated``), ``reason`` and, when ``scenario_episodes`` gives it, the scenario's ``episodes``.
        ``statistics`` holds the decision's statistics (the paired intervals with their session counts, the
        deflated Sharpe record with its observations and ``n_trials``, the controller health), the
        ``champion`` case and ``champion_version`` (the version compared against, when the caller knows it),
        and ``candidates_compared``. NaN and infinite values become None.
        """
        episodes = scenario_episodes or {}
        criteria = []
        for result in self.results:
            comparison, threshold = _comparison(result.threshold)
            if not result.evaluated:
                verdict = "not evaluated"
            else:
                verdict = "pass" if result.passed else "fail"
            entry: dict[str, Any] = {
                "scenario": result.scenario,
                "criterion": result.criterion,
                "metric": result.metric,
                "value": _json_float(result.value),
                "comparison": comparison,
                "threshold": threshold,
                "rule": result.threshold,
                "verdict": verdict,
                "reason": result.reason,
            }
            if result.scenario in episodes:
                entry["episodes"] = _json_float(float(episodes[result.scenario]))
            criteria.append(entry)
        statistics = _json_ready(self.statistics)
        deflated = self.statistics.get("deflated_sharpe") or {}
        statistics["champion"] = str(self.statistics.get("champion", "none"))
        statistics["champion_version"] = champion_version
        statistics.setdefault("candidates_compared", deflated.get("n_trials"))
        return {
            "verdict": "passed" if self.passed else "failed",
            "reason": self.reason,
            "counts": {
                "criteria": len(self.results),
                "evaluated": sum(result.evaluated for result in self.results),
                "failed": len(self.failures()),
            },
            "criteria": criteria,
            "statistics": statistics,
        }


def _tag_number(value: Any) -> str:
    if value is None:
        return "missing"
    number = float(value)
    if math.isnan(number):
        return "nan"
    return f"{number:.4g}"


def _comparison(rule: str) -> tuple[str | None, float | list[float] | None]:
    """The operator and the number(s) of a threshold as the gate writes it (``">= 1.0"`` -> ``(">=", 1.0)``)."""
    text = rule.strip()
    match = _RANGE.match(text)
    if match:
        return "in", [float(match.group(1)), float(match.group(2))]
    match = _BOUND.match(text)
    if match:
        return match.group(1), float(match.group(2))
    if text.startswith(("> champion", "< champion")):
        match = _CHAMPION_BOUND.match(text)
        if match is None:
            return text[0], None
        reference, margin = float(match.group(2)), float(match.group(4))
        bound = reference + margin if match.group(3) == "+" else reference - margin
        return match.group(1), float(f"{bound:.12g}")  # the figures were printed rounded: no false digits
    match = _TRAILING_BOUND.search(text)
    if match:
        return match.group(1), float(match.group(2))
    return None, None


def _json_float(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _json_ready(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, numbers.Integral):  # numpy integers too
        return int(value)
    if isinstance(value, numbers.Real):
        return _json_float(float(value))
    return value
