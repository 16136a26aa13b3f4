"""The walk-forward's settings, its night records and its report (table, markdown, plot, files).

:func:`stairways.walk_forward.run_walk_forward` produces the :class:`WalkForwardReport`.
"""

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CANDIDATE_FIGURES",
    "FOLLOW_FIGURES",
    "REPORT_FILES",
    "NightRecord",
    "WalkForwardConfig",
    "WalkForwardReport",
]

CANDIDATE_FIGURES: tuple[str, ...] = ("total_return_pct", "sharpe", "max_drawdown_pct", "trades_per_day")
"""The candidate's figures on the night's test window (the assessment's ``held_out/mixed`` scenario)."""

FOLLOW_FIGURES: tuple[str, ...] = ("total_return_pct", "mean_return_pct", "trades_per_day", "sessions")
"""A policy's figures on a follow block (returns in percent; sessions compounded for the total)."""

REPORT_FILES: tuple[str, ...] = ("walk_forward.json", "walk_forward.md", "walk_forward.png")


class WalkForwardConfig(BaseModel):
    """How many nights to replay over the history, how far apart, and how long to follow each champion."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    nights: int = Field(
        4, ge=1, description="Nights replayed, oldest first; the last one ends near the data's end."
    )
    step_sessions: int = Field(
        5,
        ge=1,
        description="Sessions between the data ends of consecutive nights (a night every week by default).",
    )
    follow_sessions: int | None = Field(
        None,
        ge=1,
        description="Sessions after a night on which its champion in force is followed; None: step_sessions.",
    )

    @property
    def follow_block_sessions(self) -> int:
        """``follow_sessions``, or ``step_sessions`` when it is unset."""
        return self.step_sessions if self.follow_sessions is None else self.follow_sessions


@dataclass(frozen=True)
class NightRecord:
    """One replayed night: what it saw, what the gate said, which champion was in force, how it did after."""

    night: int
    data_end: date
    """Last session the night saw (exchange calendar date)."""
    sessions: int
    """Sessions of history the night saw."""
    windows: dict[str, str | int]
    """The night's window split (:meth:`validation.windows.WindowPlan.as_dict`)."""
    cycles: int
    best_cycle: int
    training_stop: str
    gate_passed: bool
    gate_reason: str
    promoted: bool
    """Whether the night's candidate became the champion (the gate passed)."""
    champion_before: int | None
    """Night whose candidate was the champion the night compared with and warm-started from (None: none)."""
    champion_after: int | None
    """Night whose candidate is the champion in force after this night (None: none yet)."""
    candidate: dict[str, float]
    """:data:`CANDIDATE_FIGURES` of the candidate on the night's test window."""
    follow_start: date
    follow_end: date
    follow: dict[str, float] | None
    """:data:`FOLLOW_FIGURES` of the champion in force on the follow block; None when there is no champion."""
    follow_session_returns: tuple[float, ...]
    """The champion's return (a fraction) per follow session in time order; empty without a champion."""
    follow_buy_and_hold: dict[str, float]
    """:data:`FOLLOW_FIGURES` of buy-and-hold (both tickers, env costs, flat at each close) on the block."""
    wall_seconds: float

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view (dates as ISO text, non-finite numbers as None)."""
        values = dataclasses.asdict(self)
        for key in ("data_end", "follow_start", "follow_end"):
            values[key] = values[key].isoformat()
        values["follow_session_returns"] = list(self.follow_session_returns)
        return _json_ready(values)  # type: ignore[no-any-return]


def _json_ready(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    return value


def _compounded(returns_pct: Sequence[float]) -> list[float]:
    """Cumulative compounded return (percent) after each block, starting from 0 before the first."""
    path, growth = [0.0], 1.0
    for value in returns_pct:
        growth *= 1.0 + value / 100.0
        path.append(100.0 * (growth - 1.0))
    return path


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def _champion_label(record: NightRecord) -> str:
    if record.champion_after is None:
        return "none"
    return f"n{record.champion_after}" + (" new" if record.promoted else "")


_TABLE_HEADER: tuple[str, ...] = (
    "night", "data end", "sess", "cycles", "best", "gate", "champion",
    "test ret%", "sharpe", "tpd", "follow block", "champ ret%", "champ tpd", "b&h ret%", "wall s",
)  # fmt: skip
_TEXT_COLUMNS = frozenset({1, 5, 6, 10})
"""Left-aligned columns of the table (the others are numbers)."""


@dataclass(frozen=True)
class WalkForwardReport:
    """The replayed nights in time order, with the settings that produced them."""

    walk_forward: WalkForwardConfig
    seed: int
    source: str
    history_sessions: int
    records: list[NightRecord]

    def champion_follow_returns_pct(self) -> list[float]:
        """Per night, the follow-block return of the champion in force (0: no champion, the book stays flat)."""
        return [0.0 if r.follow is None else r.follow["total_return_pct"] for r in self.records]

    def buy_and_hold_follow_returns_pct(self) -> list[float]:
        """Per night, the follow-block return of buy-and-hold."""
        return [r.follow_buy_and_hold["total_return_pct"] for r in self.records]

    def summary(self) -> dict[str, Any]:
        """Gate passes, promotions, and both follow returns compounded over the nights (percent)."""
        return {
            "nights": len(self.records),
            "gate_passed": sum(r.gate_passed for r in self.records),
            "promoted": sum(r.promoted for r in self.records),
            "nights_with_champion": sum(r.follow is not None for r in self.records),
            "champion_follow_compounded_pct": _compounded(self.champion_follow_returns_pct())[-1],
            "buy_and_hold_follow_compounded_pct": _compounded(self.buy_and_hold_follow_returns_pct())[-1],
        }

    def as_dict(self) -> dict[str, Any]:
        """Settings, summary and every night record, JSON-ready."""
        return _json_ready(  # type: ignore[no-any-return]
            {
                "walk_forward": {
                    **self.walk_forward.model_dump(),
                    "follow_block_sessions": self.walk_forward.follow_block_sessions,
                },
                "seed": self.seed,
                "source": self.source,
                "history_sessions": self.history_sessions,
                "summary": self.summary(),
                "nights": [record.as_dict() for record in self.records],
            }
        )

    def _rows(self) -> list[list[str]]:
        rows = []
        for r in self.records:
            follow = r.follow or {}
            rows.append(
                [
                    str(r.night),
                    r.data_end.isoformat(),
                    str(r.sessions),
                    str(r.cycles),
                    str(r.best_cycle),
                    "PASS" if r.gate_passed else "fail",
                    _champion_label(r),
                    _number(r.candidate.get("total_return_pct"), "+.3f"),
                    _number(r.candidate.get("sharpe"), ".2f"),
                    _number(r.candidate.get("trades_per_day"), ".1f"),
                    f"{r.follow_start.isoformat()}..{r.follow_end.isoformat()}",
                    _number(follow.get("total_return_pct"), "+.3f"),
                    _number(follow.get("trades_per_day"), ".1f"),
                    _number(r.follow_buy_and_hold.get("total_return_pct"), "+.3f"),
                    f"{r.wall_seconds:.0f}",
                ]
            )
        return rows

    def _summary_lines(self) -> list[str]:
        summary = self.summary()
        verdicts = (
            f"gate passed {summary['gate_passed']}/{summary['nights']}, promoted {summary['promoted']}, "
            f"a champion in force after {summary['nights_with_champion']} nights"
        )
        follow = (
            f"follow blocks compounded: champion in force {summary['champion_follow_compounded_pct']:+.3f}%, "
            f"buy-and-hold {summary['buy_and_hold_follow_compounded_pct']:+.3f}%"
        )
        return [verdicts, follow]

    def table(self) -> str:
        """A fixed-width table, one line per night; gate reasons and the compounded follow returns below.

        ``test``: the candidate on the night's test window; ``champion``: the champion in force after the
        night (``n<k>``: trained by night k; ``new``: promoted tonight); ``champ``/``b&h``: the champion in
        force and buy-and-hold on the follow block (``-``: no champion).
        """
        rows = self._rows()
        header = list(_TABLE_HEADER)
        widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]

        def line(cells: Sequence[str]) -> str:
            return "  ".join(
                cell.ljust(width) if index in _TEXT_COLUMNS else cell.rjust(width)
                for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()

        lines = [line(header), "-" * len(line(header))]
        lines += [line(row) for row in rows]
        lines.append("")
        lines += [f"night {r.night} gate: {r.gate_reason}" for r in self.records]
        lines += self._summary_lines()
        return "\n".join(lines)

    def markdown(self) -> str:
        """The report as Markdown: settings, the nights table, gate reasons, summary and the plot."""
        wf = self.walk_forward
        settings = (
            f"{len(self.records)} nights over {self.history_sessions} sessions of `{self.source}` (seed "
            f"{self.seed}): data ends {wf.step_sessions} sessions apart, each champion in force followed for "
            f"{wf.follow_block_sessions} sessions after its night."
        )
        lines = [
            "# Walk-forward of the nightly pipeline",
            "",
            settings,
            "",
            "| " + " | ".join(_TABLE_HEADER) + " |",
            "|" + "|".join("---" if i in _TEXT_COLUMNS else "---:" for i in range(len(_TABLE_HEADER))) + "|",
        ]
        lines += ["| " + " | ".join(cell.strip() for cell in row) + " |" for row in self._rows()]
        lines += ["", "## Gate reasons", ""]
        lines += [f"- night {r.night}: {r.gate_reason}" for r in self.records]
        lines += ["", "## Summary", ""]
        lines += [f"- {text}" for text in self._summary_lines()]
        lines += ["", f"![follow-block returns compounded over nights]({REPORT_FILES[2]})", ""]
        return "\n".join(lines)

    def plot(self, path: Path) -> Path:
        """PNG: follow-block returns compounded over the nights, champion in force vs buy-and-hold; each
        night marked with its gate verdict (triangle: passed, cross: refused). Agg canvas, no pyplot state."""
        figure = Figure(figsize=(9, 5), layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.subplots()
        steps = np.arange(len(self.records) + 1)
        champion = _compounded(self.champion_follow_returns_pct())
        buy_and_hold = _compounded(self.buy_and_hold_follow_returns_pct())
        axes.plot(steps, champion, marker="o", linewidth=1.4, label="champion in force")
        axes.plot(steps, buy_and_hold, linestyle="--", linewidth=1.0, color="grey", label="buy-and-hold")
        labelled: set[bool] = set()
        for index, record in enumerate(self.records):
            # The verdict sits where the night took it: at the compounded return before its follow block.
            passed = record.gate_passed
            axes.scatter(
                [index],
                [champion[index]],
                marker="^" if passed else "x",
                color="tab:green" if passed else "tab:red",
                s=80,
                zorder=3,
                label=None if passed in labelled else ("gate passed" if passed else "gate refused"),
            )
            labelled.add(passed)
        axes.axhline(0.0, color="black", linewidth=0.6, linestyle=":")
        labels = [f"night {r.night}\n{r.data_end.isoformat()}" for r in self.records]
        labels.append(f"end\n{self.records[-1].follow_end.isoformat()}" if self.records else "end")
        axes.set_xticks(steps, labels, fontsize=7)
        axes.set_xlabel(
            "night at its data end (marker: its gate verdict); the segment after it: its follow block"
        )
        axes.set_ylabel("follow-block return compounded over nights (%)")
        axes.set_title("Walk-forward: the champion in force after each night, followed")
        axes.legend(fontsize=8, loc="best")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png", dpi=90)
        return path

    def write(self, directory: Path) -> list[Path]:
        """Write ``walk_forward.json``, ``walk_forward.md`` and ``walk_forward.png`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        json_path, markdown_path, plot_path = (directory / name for name in REPORT_FILES)
        json_path.write_text(json.dumps(self.as_dict(), indent=2, allow_nan=False) + "\n")
        markdown_path.write_text(self.markdown())
        return [json_path, markdown_path, self.plot(plot_path)]
