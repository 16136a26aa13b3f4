"""One night's report: a single self-contained HTML page a quant reads the next morning.

Sections, in the order of the night: verdict and links; data and QC; labels; the three windows; training
(learning curves, controller trajectory, per-cycle table); the gate (every criterion with its threshold,
verdict and sample size, the paired confidence intervals, the deflated Sharpe ratio); the test window
(compounded equity and drawdown of candidate, champion and baselines, with performance statistics); a sample
session's positions and actions; the transaction-cost analysis; drift against the champion's training data;
what changed since the previous night.

Performance statistics come from **empyrical-reloaded** (the maintained fork of Quantopian's empyrical):
small, pure functions over a return series with no plotting or network dependencies, where quantstats would
pull seaborn and yfinance into the lock for the same numbers. They are computed on per-session returns (252
sessions a year) and always shown beside the number of sessions they rest on; under
:data:`FEW_SESSIONS` sessions a statistic is marked as indicative only.

Rendering only: every number is computed elsewhere (assessment, gate, TCA, drift) except those statistics and
the compounded curves; nothing here writes anywhere.
"""

import html
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import empyrical
import numpy as np

from stairways import night_figures
from stairways.assessment import Assessment
from training.outcome import CycleResult
from validation.costs import TransactionCosts
from validation.drift import DriftRow
from validation.gate_decision import GateDecision

__all__ = [
    "FEW_SESSIONS",
    "Change",
    "NightReport",
    "changes_between",
    "params_changes",
    "performance_statistics",
    "render_night_report",
]

FEW_SESSIONS = 20
"""Below this many sessions, annualized statistics are shown but marked as indicative only."""

_STATISTICS = (
    "sessions",
    "total_return_pct",
    "annual_return_pct",
    "sharpe",
    "sortino",
    "max_drawdown_pct",
    "calmar",
)

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #ddd;padding:.25em .6em;
text-align:right}th{background:#f4f4f4}td.l,th.l{text-align:left}.pass{color:#17692c;font-weight:600}
.fail{color:#b00020;font-weight:600}.muted{color:#777}.verdict{font-size:1.2em;padding:.5em .8em;
border-radius:4px;display:inline-block}.verdict.pass{background:#e6f4ea}.verdict.fail{background:#fde7ea}
img{max-width:100%}nav a{margin-right:.8em}
"""


@dataclass(frozen=True)
class Change:
    """One line of "what changed since the previous night"."""

    what: str
    previous: str
    tonight: str


@dataclass(frozen=True)
class NightReport:
    """Everything the report shows; built by the flow's last task from the night's own results."""

    run_id: str
    links: Mapping[str, str]
    """Label -> URL or location (MLflow run, Prefect flow run, registered model version)."""
    symbols: tuple[str, str]
    dataset: Mapping[str, Any]
    qc: Mapping[str, Any]
    labels: Mapping[str, Any]
    windows: Mapping[str, Any]
    cycles: Sequence[CycleResult]
    best_cycle: int
    training_stop: str
    decision: GateDecision
    assessment: Assessment
    promotion: str
    """What happened in the registry (promoted, rejected, replay failed ...) and why."""
    lineage: Mapping[str, str] = field(default_factory=dict)
    drift: Sequence[DriftRow] | None = None
    drift_note: str = ""
    changes: Sequence[Change] | None = None
    """None: no previous night to compare with."""
    generated_at: str = ""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _number(value: object, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.{digits}g}"
    return _e(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, left: int = 1) -> str:
    """An HTML table; the first ``left`` columns are left-aligned text, cells already rendered are kept."""
    head = "".join(f'<th class="{"l" if i < left else ""}">{_e(h)}</th>' for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = []
        for index, cell in enumerate(row):
            text = cell if isinstance(cell, _Html) else _number(cell)
            cells.append(f'<td class="{"l" if index < left else ""}">{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


class _Html(str):
    """Markup that :func:`_table` must not escape."""


def _verdict(passed: bool, text: str | None = None) -> _Html:
    label = text or ("pass" if passed else "fail")
    return _Html(f'<span class="{"pass" if passed else "fail"}">{_e(label)}</span>')


def _image(uri: str, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="{uri}">' if uri else f'<p class="muted">No data for: {_e(alt)}.</p>'


def performance_statistics(returns: Sequence[float]) -> dict[str, float]:
    """Per-session returns (fractions) -> the report's statistics (empyrical, 252 sessions a year)."""
    series = np.asarray(returns, dtype=np.float64)
    result = {"sessions": float(series.size)}
    if series.size == 0:
        return result | {key: math.nan for key in _STATISTICS[1:]}
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        result |= {
            "total_return_pct": 100.0 * float(empyrical.cum_returns_final(series)),
            "annual_return_pct": 100.0 * float(empyrical.annual_return(series, period="daily")),
            "sharpe": float(empyrical.sharpe_ratio(series, period="daily")),
            "sortino": float(empyrical.sortino_ratio(series, period="daily")),
            "max_drawdown_pct": 100.0 * float(empyrical.max_drawdown(series)),
            "calmar": float(empyrical.calmar_ratio(series, period="daily")),
        }
    return result


def _header(report: NightReport) -> str:
    decision = report.decision
    links = "".join(
        f"<li>{_e(label)}: "
        + (
            f'<a href="{_e(url)}">{_e(url)}</a>'
            if url.startswith(("http://", "https://"))
            else f"<code>{_e(url)}</code>"
        )
        + "</li>"
        for label, url in report.links.items()
    )
    lineage = "".join(
        f"<li>{_e(key)}: <code>{_e(value)}</code></li>" for key, value in report.lineage.items()
    )
    verdict = "gate passed" if decision.passed else "gate rejected"
    return (
        f"<h1>Night report: {_e(' / '.join(report.symbols))}</h1>"
        f'<p class="muted">MLflow run <code>{_e(report.run_id)}</code>, written {_e(report.generated_at)}</p>'
        f'<p class="verdict {"pass" if decision.passed else "fail"}">{_e(verdict)}: {_e(decision.reason)}</p>'
        f"<p><b>Registry:</b> {_e(report.promotion)}</p><ul>{links}{lineage}</ul>"
    )


def _data_section(report: NightReport) -> str:
    dataset = report.dataset
    rows = [
        (key, _Html(_e(dataset[key])))
        for key in ("source", "symbols", "start", "end", "sessions", "rows", "bar_minutes", "digest")
        if key in dataset
    ]
    repairs = [(key, value) for key, value in (dataset.get("repairs") or {}).items() if value]
    qc_rows = [
        (key, value if isinstance(value, int | float) else _Html(_e(value)))
        for key, value in report.qc.items()
        if not isinstance(value, Mapping | list)
    ]
    parts = ["<h2 id='data'>Data and QC</h2>", _table(("field", "value"), rows)]
    parts.append(
        _table(("repair", "rows"), repairs)
        if repairs
        else "<p>No repairs were needed (no rows dropped or fixed).</p>"
    )
    if qc_rows:
        parts += ["<h3>QC statistics</h3>", _table(("statistic", "value"), qc_rows)]
    return "".join(parts)


def _labels_section(report: NightReport) -> str:
    rows = []
    for horizon, by_symbol in sorted(
        (report.labels.get("by_horizon") or {}).items(), key=lambda item: int(item[0])
    ):
        for symbol, stats in by_symbol.items():
            balance = stats.get("class_balance") or {}
            holding = stats.get("holding_bars") or {}
            exits = stats.get("exit_shares") or {}
            rows.append(
                (
                    f"{horizon} bars",
                    _Html(_e(symbol)),
                    stats.get("n_events"),
                    balance.get("-1"),
                    balance.get("0"),
                    balance.get("1"),
                    holding.get("mean"),
                    exits.get("vertical"),
                )
            )
    if not rows:
        return "<h2 id='labels'>Labels</h2><p class='muted'>No label statistics.</p>"
    headers = (
        "horizon",
        "symbol",
        "events",
        "share -1",
        "share 0",
        "share +1",
        "mean holding bars",
        "vertical exits",
    )
    return "<h2 id='labels'>Labels (triple barrier)</h2>" + _table(headers, rows, left=2)


def _windows_section(report: NightReport) -> str:
    rows = [(key, _Html(_e(value))) for key, value in report.windows.items()]
    return (
        "<h2 id='windows'>Windows</h2><p>Training fits the policy, the selection window picks the cycle, and the "
        "test window (read only after the candidate was fixed) judges it.</p>"
        + _table(("window", "value"), rows)
    )


def _training_section(report: NightReport) -> str:
    rows = [
        (
            cycle.cycle,
            _Html(_e(cycle.warm_start_reason)),
            cycle.evaluation.get("score"),
            cycle.evaluation.get("trades_per_day"),
            cycle.metrics.get("hold_rate"),
            cycle.metrics.get("controller_health.score"),
            cycle.divergence,
            _verdict(not cycle.rolled_back, "rolled back" if cycle.rolled_back else "kept"),
        )
        for cycle in report.cycles
    ]
    headers = (
        "cycle",
        "start",
        "selection score",
        "trades/day",
        "hold rate",
        "controller health",
        "divergence",
        "kept",
    )
    learning = night_figures.learning_figure({cycle.cycle: cycle.learning_curve for cycle in report.cycles})
    controller = night_figures.controller_figure({cycle.cycle: cycle.trajectory for cycle in report.cycles})
    return (
        "<h2 id='training'>Training</h2>"
        f"<p>Kept: cycle {report.best_cycle} (by selection-window score). Stop: {_e(report.training_stop)}.</p>"
        + _table(headers, rows, left=2)
        + "<h3>Learning curves</h3>"
        + _image(learning, "learning curves")
        + "<h3>Reward controller</h3>"
        + _image(controller, "controller trajectory")
    )


def _gate_section(report: NightReport) -> str:
    decision = report.decision
    candidate = report.assessment.candidate
    rows = []
    for result in decision.results:
        episodes = (candidate.get(result.scenario) or {}).get("episodes")
        verdict = (
            _verdict(result.passed) if result.evaluated else _Html('<span class="muted">not evaluated</span>')
        )
        rows.append(
            (
                _Html(_e(result.scenario)),
                _Html(_e(result.criterion)),
                result.value,
                _Html(_e(result.threshold)),
                verdict,
                None if episodes is None else int(episodes),
            )
        )
    parts = [
        "<h2 id='gate'>Gate</h2>",
        _table(("scenario", "criterion", "value", "threshold", "verdict", "episodes"), rows, left=2),
    ]
    paired = decision.statistics.get("paired") or {}
    if paired:
        interval_rows = [
            (
                _Html(_e(name)),
                interval.get("estimate"),
                f"{interval.get('confidence', 0.0):.0%}",
                interval.get("lower"),
                interval.get("upper"),
                interval.get("sessions"),
            )
            for name, interval in paired.items()
        ]
        parts += [
            f"<h3>Paired sessions ({_e(decision.statistics.get('scenario', ''))}): candidate minus each policy</h3>",
            _table(
                ("versus", "mean difference %", "confidence", "lower %", "upper %", "sessions"), interval_rows
            ),
        ]
    deflated = decision.statistics.get("deflated_sharpe") or {}
    if "probability" in deflated:
        parts.append(
            f"<p>Deflated Sharpe ratio: probability {_number(deflated['probability'])} that the best of "
            f"{_number(deflated.get('n_trials'))} candidates has a true Sharpe ratio above zero.</p>"
        )
    elif "problem" in deflated:
        parts.append(f"<p>Deflated Sharpe ratio unavailable: {_e(deflated['problem'])}.</p>")
    return "".join(parts)


def _performance_section(report: NightReport) -> str:
    assessment = report.assessment
    returns = assessment.session_returns
    sessions = list(assessment.paired_sessions)
    order = ["candidate", "champion", *[name for name in returns if name not in ("candidate", "champion")]]
    drawn = {name: returns[name] for name in order if name in returns}
    rows = []
    for name, values in drawn.items():
        stats = performance_statistics(values)
        rows.append(
            (_Html(_e(name)), *[stats[key] if key != "sessions" else int(stats[key]) for key in _STATISTICS])
        )
    count = len(sessions)
    caution = (
        f"<p class='fail'>Only {count} sessions: annualized figures are indicative only "
        f"(under {FEW_SESSIONS} sessions).</p>"
        if count < FEW_SESSIONS
        else ""
    )
    first_last = f" ({_e(sessions[0])} to {_e(sessions[-1])})" if sessions else ""
    headers = (
        "policy",
        "sessions",
        "total return %",
        "annual return %",
        "Sharpe (sessions)",
        "Sortino (sessions)",
        "max drawdown % (compounded)",
        "Calmar (sessions)",
    )
    return (
        f"<h2 id='test'>Test window{first_last}: compounded over {count} sessions</h2>"
        + _image(night_figures.equity_figure(drawn, sessions), "equity and drawdown")
        + caution
        + _table(headers, rows)
        + "<p class='muted'>Per-session returns compounded over the window, annualized with 252 sessions a "
        "year (empyrical). The gate's Sharpe and drawdown above are its own definitions (per bar within "
        "episodes, validation/metrics.py), so the two tables differ by construction.</p>"
    )


def _session_section(report: NightReport) -> str:
    record = report.assessment.sample_episode
    if record is None:
        return "<h2 id='session'>A sample session</h2><p class='muted'>No candidate episodes on the test window.</p>"
    return (
        f"<h2 id='session'>A sample session: {_e(record.session)} (the candidate's median session)</h2>"
        f"<p>Return {_number(100.0 * record.total_return)} %, {record.agent_orders} orders, "
        f"{record.partial_fills} partial fills.</p>"
        + _image(night_figures.session_figure(record, report.symbols), "positions and actions")
    )


def _costs_section(costs: TransactionCosts | None) -> str:
    if costs is None:
        return "<h2 id='costs'>Transaction costs</h2><p class='muted'>No candidate episodes.</p>"
    components = [
        (
            _Html(_e(name)),
            costs.cost_dollars[name],
            costs.cost_per_order[name],
            costs.cost_bps[name],
        )
        for name in costs.cost_dollars
    ]
    execution = [
        ("agent orders", costs.agent_orders),
        ("flattening orders", costs.flatten_orders),
        ("traded notional $", costs.traded_notional),
        ("participation mean", costs.participation_mean),
        ("participation p95", costs.participation_p95),
        ("participation max", costs.participation_max),
        ("partial-fill share", costs.partial_fill_share),
        ("slippage vs decision price, mean bps", costs.slippage_bps_mean),
        ("slippage vs decision price, median bps", costs.slippage_bps_median),
        ("slippage vs decision price, p95 bps", costs.slippage_bps_p95),
    ]
    return (
        f"<h2 id='costs'>Transaction costs (candidate, {costs.episodes} test sessions)</h2>"
        + _table(("component", "dollars", "per order $", "bps of traded notional"), components)
        + _table(("execution", "value"), execution)
        + "<p class='muted'>Slippage: the fill (next bar's open) against the close the agent decided on, signed "
        "against the order; spread, fees and impact come on top.</p>"
    )


def _drift_section(report: NightReport) -> str:
    if report.drift is None:
        return f"<h2 id='drift'>Drift</h2><p class='muted'>{_e(report.drift_note or 'Not computed.')}</p>"
    rows = sorted(
        report.drift, key=lambda row: (not row.drifted, -(row.psi if math.isfinite(row.psi) else 0.0))
    )
    drifted = sum(row.drifted for row in rows)
    table_rows = [
        (
            _Html(_e(row.column)),
            row.psi,
            row.ks_statistic,
            row.ks_pvalue,
            row.reference_rows,
            row.current_rows,
            _verdict(not row.drifted, "drift" if row.drifted else "stable"),
        )
        for row in rows[:25]
    ]
    more = (
        f"<p class='muted'>{len(rows) - 25} more columns in drift/features.json.</p>"
        if len(rows) > 25
        else ""
    )
    return (
        f"<h2 id='drift'>Drift: {drifted} of {len(rows)} columns</h2><p>{_e(report.drift_note)}</p>"
        + _table(
            ("column", "PSI", "KS statistic", "KS p-value", "reference rows", "tonight rows", "verdict"),
            table_rows,
        )
        + more
    )


def _changes_section(report: NightReport) -> str:
    if report.changes is None:
        return "<h2 id='changes'>Since the previous night</h2><p class='muted'>No previous night to compare with.</p>"
    if not report.changes:
        return "<h2 id='changes'>Since the previous night</h2><p>Nothing changed in data, config, code or model.</p>"
    rows = [(_Html(_e(c.what)), _Html(_e(c.previous)), _Html(_e(c.tonight))) for c in report.changes]
    return "<h2 id='changes'>Since the previous night</h2>" + _table(
        ("what", "previous night", "tonight"), rows, left=3
    )


def render_night_report(report: NightReport) -> str:
    """The whole report as one HTML document (figures inline, no external resources)."""
    generated = report.generated_at or datetime.now(UTC).isoformat(timespec="seconds")
    report = NightReport(**{**report.__dict__, "generated_at": generated})
    sections = [
        _header(report),
        "<nav>"
        + "".join(
            f'<a href="#{anchor}">{label}</a>'
            for anchor, label in (
                ("data", "data"),
                ("labels", "labels"),
                ("windows", "windows"),
                ("training", "training"),
                ("gate", "gate"),
                ("test", "test window"),
                ("session", "sample session"),
                ("costs", "costs"),
                ("drift", "drift"),
                ("changes", "changes"),
            )
        )
        + "</nav>",
        _data_section(report),
        _labels_section(report),
        _windows_section(report),
        _training_section(report),
        _gate_section(report),
        _performance_section(report),
        _session_section(report),
        _costs_section(report.assessment.transaction_costs),
        _drift_section(report),
        _changes_section(report),
    ]
    title = f"stairways night {report.run_id}"
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{''.join(sections)}</body></html>"
    )


def changes_between(
    previous: Mapping[str, str], tonight: Mapping[str, str], *, labels: Mapping[str, str]
) -> list[Change]:
    """The entries of ``labels`` (key -> what it is) whose values differ between two nights' records."""
    return [
        Change(what, previous.get(key, "-"), tonight.get(key, "-"))
        for key, what in labels.items()
        if previous.get(key, "-") != tonight.get(key, "-")
    ]


def params_changes(previous: Mapping[str, str], tonight: Mapping[str, str]) -> list[Change]:
    """Config parameters that differ (added, removed or changed), one line each."""
    keys = sorted(set(previous) | set(tonight))
    return [
        Change(f"config {key}", previous.get(key, "(absent)"), tonight.get(key, "(absent)"))
        for key in keys
        if previous.get(key) != tonight.get(key)
    ]
