"""The promotion gate's markdown report: verdict, reason, one table row per criterion, the statistics.

Rendering only: it reads a :class:`~validation.gate_decision.GateDecision` and the metrics behind it and
changes nothing; the rules are in :mod:`validation.gate`.
"""

import math
from collections.abc import Mapping, Sequence

from validation.gate_criteria import BASELINE_NAMES, CONTROLLER_HEALTH_CRITERION, DEFLATED_SHARPE_CRITERION
from validation.gate_decision import GateDecision

__all__ = ["gate_report"]


def _cell(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "NaN"
    return f"{value:.4g}"


def _lookup(metrics: Mapping[str, Mapping[str, float]] | None, scenario: str, metric: str) -> float | None:
    if metrics is None or scenario not in metrics:
        return None
    value = metrics[scenario].get(metric)
    return None if value is None else float(value)


def _statistics_lines(decision: GateDecision, names: Sequence[str]) -> list[str]:
    statistics = decision.statistics
    lines: list[str] = []
    champion = statistics.get("champion")
    if champion == "incomparable, replaced":
        lines += [
            "",
            "> **WARNING: an incomparable champion was replaced** (gate.replace_incomparable_champion).",
            "",
        ]
    elif champion == "incomparable":
        lines += [
            "",
            "> **The champion could not be evaluated on tonight's observations: no promotion.**",
            "",
        ]
    paired = statistics.get("paired") or {}
    if paired:
        judged = {result.criterion: result for result in decision.results if result.criterion.endswith("_ci")}
        lines += [
            "",
            f"## Paired sessions ({statistics.get('scenario', '')}): candidate minus each policy, per session",
            "",
            "| versus | mean difference % | interval % | sessions | judged |",
            "|---|---|---|---|---|",
        ]
        for name, interval in paired.items():
            result = judged.get(f"beats_{name}_ci")
            verdict = "-" if result is None else ("pass" if result.passed else "**fail**")
            confidence = interval.get("confidence", 0.0)
            lines.append(
                f"| {name} | {_cell(interval['estimate'])} | {confidence:.0%}: [{_cell(interval['lower'])}, "
                f"{_cell(interval['upper'])}] | {interval['sessions']} | {verdict} |"
            )
        rule = paired.get("signal_rule")
        if rule is not None:
            if rule["lower"] > 0.0:
                verdict = "the agent beats the signal rule with confidence: RL added something"
            elif rule["upper"] < 0.0:
                verdict = "the signal rule beats the agent with confidence: RL made it worse"
            else:
                verdict = "no measurable difference between the agent and the signal rule"
            lines += ["", f"**Agent vs signal rule:** {verdict}."]
    deflated = statistics.get("deflated_sharpe")
    if deflated:
        if "problem" in deflated:
            lines += ["", f"**Deflated Sharpe ratio:** unavailable ({deflated['problem']})."]
        else:
            lines += [
                "",
                f"**Deflated Sharpe ratio:** {_cell(deflated['probability'])} (per-session Sharpe "
                f"{_cell(deflated['sharpe'])} over {deflated['observations']} sessions, against "
                f"{_cell(deflated['benchmark_sharpe'])}, the best expected of {deflated['n_trials']} candidates "
                "compared).",
            ]
    health = statistics.get("controller_health")
    if health:
        lines += [
            "",
            (
                f"**Reward controller health:** {_cell(health.get('score'))} (greedy trades/day error on the "
                f"selection window {_cell(health.get('selection_trades_error'))} of target, on training "
                f"sessions {_cell(health.get('trades_error'))}; saturated {_cell(health.get('saturation_share'))} "
                f"of {_cell(health.get('rollouts'))} rollouts; oscillation {_cell(health.get('oscillation'))}; "
                f"behaviour follows target {_cell(health.get('behaviour_follows_target'))})."
            ),
        ]
    return lines


def gate_report(
    decision: GateDecision,
    *,
    candidate: Mapping[str, Mapping[str, float]],
    champion: Mapping[str, Mapping[str, float]] | None,
    baselines: Mapping[str, Mapping[str, Mapping[str, float]]],
    links: Mapping[str, str],
    windows: Mapping[str, str | int] | None = None,
) -> str:
    """A markdown report: verdict and reason, one row per criterion with candidate, champion and baselines.

    ``baselines`` maps a baseline name (``flat``, ``buy_and_hold``, ``signal_rule``) to its per-scenario
    metrics; ``links`` maps a label ("MLflow run", "model version") to a URL; ``windows`` the bounds of the
    training, selection and test windows (:meth:`validation.windows.WindowPlan.as_dict`). Every row shows
    the scenario's episode count ``n`` beside its figures; the paired intervals, the deflated Sharpe ratio
    and the agent-vs-signal-rule verdict follow the table.
    """
    verdict = "PASSED" if decision.passed else "REJECTED"
    names = [name for name in BASELINE_NAMES if name in baselines] + sorted(
        name for name in baselines if name not in BASELINE_NAMES
    )
    lines = [f"# Promotion gate: {verdict}", "", f"**Reason:** {decision.reason}", ""]
    if links:
        lines += [f"- {label}: [{url}]({url})" for label, url in links.items()]
        lines.append("")
    if windows:
        lines.append(
            "**Windows:** "
            + "; ".join(
                f"{name} {windows.get(f'{name}_start', '?')} .. {windows.get(f'{name}_end', '?')}"
                for name in ("train", "selection", "test")
            )
            + f" (purge gaps of {windows.get('purge_bars', '?')} bars). The selection window picked the "
            "candidate; the test window (`held_out/*`) judged it."
        )
        lines.append("")
    header = ["scenario", "n", "criterion", "metric", "threshold", "candidate", "champion", *names, "result"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for result in decision.results:
        if not result.evaluated:
            outcome = "not evaluated"
        else:
            outcome = "pass" if result.passed else "**fail**"
        scenario = result.scenario
        episodes = _lookup(candidate, scenario, "episodes")
        row = [
            scenario,
            "-" if episodes is None else f"{episodes:.0f}",
            result.criterion,
            result.metric,
            result.threshold.replace("|", "\\|"),
            _cell(
                result.value
                if result.criterion.endswith("_ci")
                or result.criterion in (DEFLATED_SHARPE_CRITERION, CONTROLLER_HEALTH_CRITERION)
                else _lookup(candidate, scenario, result.metric)
            ),
            _cell(_lookup(champion, scenario, result.metric)),
            *(_cell(_lookup(baselines[name], scenario, result.metric)) for name in names),
            outcome,
        ]
        lines.append("| " + " | ".join(row) + " |")
    lines += _statistics_lines(decision, names)
    reasons = [result for result in decision.results if not result.passed]
    if reasons:
        lines += ["", "## Why", ""]
        lines += [f"- `{result.scenario}` {result.criterion}: {result.reason}" for result in reasons]
    return "\n".join(lines) + "\n"
