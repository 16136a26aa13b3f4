"""The labeling stage: triple-barrier labels for every bar of the two-symbol bar frame, and a report.

This is the pipeline step; the labeling primitives it calls (triple barrier, CUSUM, volatility targets) are
in :mod:`market.triple_barrier`. :func:`label_bars` runs :func:`market.triple_barrier.triple_barrier` per
symbol and per vertical-barrier horizon with events at every bar after the volatility warm-up, and returns
one long frame. The choices it makes:

- **Target.** The barrier width is the EWM standard deviation of 1-bar simple returns
  (:func:`market.triple_barrier.ewm_volatility`, span ``volatility_span``) at the event bar, which uses
  returns up to and including that bar only. With ``scale_target_by_horizon`` the width of a horizon-``h``
  event is ``volatility * sqrt(h)``: the standard deviation of an ``h``-bar return under independent
  increments, so the barriers of every horizon are about equally far in probability and every horizon has a
  usable mix of touches and vertical exits. Without it every horizon uses the 1-bar volatility (its barriers
  then sit very close for long horizons, and almost every event touches).
- **Warm-up.** The first ``volatility_span`` bars of each symbol are not events: an EWM standard deviation
  needs about one span of returns before it is a stable estimate. Events run from bar ``volatility_span`` to
  the last bar.
- **Overnight gap.** Bars are one continuous series per symbol. Barriers may run across the session close:
  an event late in a session keeps its vertical barrier ``h`` bars later, in the next session, and its path
  includes the overnight gap, as a position held over the close would. The gap is a real risk for such a
  position, so it is part of the label and the return. For the same reason the volatility target sees the
  session's first close-to-previous-close return like any other 1-bar return (one sample per session, whose
  weight decays with the span). Holding periods are reported in bars and in wall-clock minutes; an exit in
  the next session shows the overnight break in minutes, not in bars.
- **Last bars.** Events whose vertical barrier falls after the data and that touch nothing keep ``t1`` null
  and barrier ``"none"`` (label 0 there means "unknown", not "vertical"); downstream models must not train
  on them.

Output: columns ``symbol``, then :data:`market.triple_barrier.LABEL_COLUMNS` (``event_ts``, ``horizon``,
``t1``, ``barrier``, ``ret``, ``target``, ``side``, ``label``, ``meta_label``; ``side`` and ``meta_label``
are null, meta-labels come from the signal stage), then ``holding_bars`` (Int64: bars from the event to
``t1``, null without ``t1``); sorted by symbol, horizon, event_ts.

:func:`label_report` summarizes a label frame as JSON-ready numbers and :func:`plot_label_report` draws it.
"""

import math
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.errors import ConfigError
from market.triple_barrier import BARRIER_NAMES, LABEL_COLUMNS, ewm_volatility, triple_barrier

__all__ = [
    "LABELING_COLUMNS",
    "LABEL_CLASSES",
    "LabelConfig",
    "label_bars",
    "label_report",
    "plot_label_report",
]

LABELING_COLUMNS: Final[tuple[str, ...]] = ("symbol", *LABEL_COLUMNS, "holding_bars")
LABEL_CLASSES: Final[tuple[int, ...]] = (-1, 0, 1)
_QUANTILES: Final[tuple[float, ...]] = (0.05, 0.25, 0.5, 0.75, 0.95)
_NANOSECONDS_PER_MINUTE: Final = 60_000_000_000
_REPORT_COLUMNS: Final[tuple[str, ...]] = (
    "symbol",
    "event_ts",
    "horizon",
    "t1",
    "barrier",
    "ret",
    "label",
    "holding_bars",
)


class LabelConfig(BaseModel):
    """How bars become triple-barrier labels; see the module docstring for the target and gaps."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    horizons: tuple[int, ...] = Field(
        default=(10, 20, 50),
        description="Vertical barriers in bars after the event; one label block per horizon.",
    )
    primary_horizon: int = Field(
        default=20, description="The horizon the signal model learns; must be one of `horizons`."
    )
    profit_take_mult: float = Field(
        default=1.0, ge=0.0, description="Profit-take barrier at +mult * target; 0 disables it."
    )
    stop_loss_mult: float = Field(
        default=1.0, ge=0.0, description="Stop-loss barrier at -mult * target; 0 disables it."
    )
    volatility_span: int = Field(
        default=100,
        ge=2,
        description="Span (bars) of the EWM volatility of 1-bar returns used as the target; also the number "
        "of leading bars per symbol that are not events (volatility warm-up).",
    )
    scale_target_by_horizon: bool = Field(
        default=True,
        description="Target of a horizon-h event = EWM volatility of 1-bar returns * sqrt(h); otherwise the "
        "1-bar volatility for every horizon.",
    )
    min_return: float = Field(
        default=0.0, ge=0.0, description="Events whose target is not above this return are dropped."
    )
    label_vertical_by_sign: bool = Field(
        default=False,
        description="Label vertical exits by the sign of their return (when |ret| >= min_return_threshold) "
        "instead of 0.",
    )
    min_return_threshold: float = Field(
        default=0.001, ge=0.0, description="Smallest |return| a vertical exit needs to be labelled by sign."
    )

    @field_validator("horizons")
    @classmethod
    def _valid_horizons(cls, horizons: tuple[int, ...]) -> tuple[int, ...]:
        if not horizons:
            message = "horizons is empty: give at least one vertical barrier in bars"
            raise ValueError(message)
        bad = [horizon for horizon in horizons if horizon < 1]
        if bad:
            message = f"every horizon must be at least 1 bar, got {bad}"
            raise ValueError(message)
        if len(set(horizons)) != len(horizons):
            message = f"horizons must be distinct, got {horizons}"
            raise ValueError(message)
        return horizons

    @model_validator(mode="after")
    def _primary_is_a_horizon(self) -> "LabelConfig":
        if self.primary_horizon not in self.horizons:
            message = f"primary_horizon {self.primary_horizon} is not one of horizons {self.horizons}"
            raise ValueError(message)
        return self


def _check_bars(bars: pl.DataFrame) -> None:
    missing = [name for name in ("ts", "symbol", "close") if name not in bars.columns]
    if missing:
        message = f"bars lack column(s) {missing}; label_bars needs the canonical bar frame"
        raise ValueError(message)
    if bars.height == 0:
        message = "bars is empty: nothing to label"
        raise ValueError(message)
    if not isinstance(bars.schema["ts"], pl.Datetime):
        message = f"bars.ts must be Datetime, got {bars.schema['ts']}"
        raise ValueError(message)


def _label_symbol(symbol: str, frame: pl.DataFrame, *, config: LabelConfig) -> list[pl.DataFrame]:
    """Label blocks (one per horizon) of one symbol's ``ts``/``close`` frame, sorted by ts."""
    n_bars = frame.height
    warmup = config.volatility_span
    longest = max(config.horizons)
    if warmup + longest >= n_bars:
        message = (
            f"symbol {symbol}: horizon {longest} bars after a volatility warm-up of {warmup} bars needs more "
            f"than {warmup + longest} bars, but there are {n_bars}; shorten horizons/volatility_span or give "
            "more data"
        )
        raise ConfigError(message)
    volatility = ewm_volatility(frame, span=config.volatility_span)
    events = frame["ts"].slice(warmup)
    positions = pl.DataFrame({"ts": frame["ts"], "_position": np.arange(n_bars, dtype=np.int64)})
    blocks = []
    for horizon in config.horizons:
        scale = math.sqrt(horizon) if config.scale_target_by_horizon else 1.0
        target = volatility.select("ts", (pl.col("volatility") * scale).alias("target"))
        labelled = triple_barrier(
            frame,
            events=events,
            target=target,
            profit_take_mult=config.profit_take_mult,
            stop_loss_mult=config.stop_loss_mult,
            vertical_barrier=horizon,
            min_return=config.min_return,
            label_vertical_by_sign=config.label_vertical_by_sign,
            min_return_threshold=config.min_return_threshold,
        )
        if labelled.height == 0:
            largest = target["target"].slice(warmup).max()
            message = (
                f"symbol {symbol}, horizon {horizon}: every event was filtered out (min_return="
                f"{config.min_return}, largest target {largest}); lower min_return"
            )
            raise ConfigError(message)
        labelled = (
            labelled.join(
                positions.rename({"ts": "event_ts", "_position": "_start"}), on="event_ts", how="left"
            )
            .join(positions.rename({"ts": "t1", "_position": "_end"}), on="t1", how="left")
            .with_columns(
                pl.lit(symbol, dtype=pl.Utf8).alias("symbol"),
                (pl.col("_end") - pl.col("_start")).alias("holding_bars"),
            )
            .select(LABELING_COLUMNS)
        )
        blocks.append(labelled)
    return blocks


def label_bars(bars: pl.DataFrame, *, config: LabelConfig = LabelConfig()) -> pl.DataFrame:
    """Triple-barrier labels at every bar after the volatility warm-up, per symbol and horizon.

    See the module docstring for the target, the warm-up, the overnight gap and the output columns
    (:data:`LABELING_COLUMNS`, sorted by symbol, horizon, event_ts).

    Raises:
        ConfigError: a horizon (after the warm-up) longer than a symbol's data, every event of a symbol and
            horizon filtered out (``min_return`` too high), or fewer than two label classes among a symbol's
            resolved events at the primary horizon.
        ValueError: bars lacking ``ts``/``symbol``/``close``, empty, or with unsorted/duplicated timestamps
            within a symbol.
    """
    _check_bars(bars)
    blocks: list[pl.DataFrame] = []
    for symbol in sorted(bars["symbol"].unique().to_list()):
        frame = bars.filter(pl.col("symbol") == symbol).select("ts", "close")
        blocks.extend(_label_symbol(str(symbol), frame, config=config))
    labels = pl.concat(blocks, how="vertical").sort("symbol", "horizon", "event_ts")
    classes = (
        labels.filter((pl.col("horizon") == config.primary_horizon) & pl.col("t1").is_not_null())
        .group_by("symbol")
        .agg(pl.col("label").unique().sort().alias("classes"))
        .sort("symbol")
    )
    for symbol, present in classes.iter_rows():
        if len(present) < 2:
            message = (
                f"symbol {symbol}: only label class(es) {present} at the primary horizon "
                f"{config.primary_horizon}; a classifier needs at least two (check profit_take_mult/"
                "stop_loss_mult: with both barriers disabled every exit is vertical, label 0)"
            )
            raise ConfigError(message)
    return labels


# ------------------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------------------


def _distribution(values: np.ndarray) -> dict[str, Any]:
    """Count, mean, std (ddof=1) and quantiles of finite values; None where undefined (JSON null)."""
    finite = values[np.isfinite(values)]
    count = int(finite.shape[0])
    if count == 0:
        return {"count": 0, "mean": None, "std": None, "quantiles": {f"{q:g}": None for q in _QUANTILES}}
    quantiles = np.quantile(finite, _QUANTILES)
    return {
        "count": count,
        "mean": float(finite.mean()),
        "std": float(finite.std(ddof=1)) if count > 1 else None,
        "quantiles": {f"{q:g}": float(value) for q, value in zip(_QUANTILES, quantiles, strict=True)},
    }


def _check_label_frame(labels: pl.DataFrame) -> None:
    missing = [name for name in _REPORT_COLUMNS if name not in labels.columns]
    if missing:
        message = f"labels lack column(s) {missing}; pass the frame label_bars returns"
        raise ValueError(message)
    if labels.height == 0:
        message = "labels is empty: nothing to report"
        raise ValueError(message)


def _group_report(group: pl.DataFrame) -> dict[str, Any]:
    resolved = group.filter(pl.col("t1").is_not_null())
    n_resolved = resolved.height
    counts = {str(value): int((resolved["label"] == value).sum()) for value in LABEL_CLASSES}
    barrier_counts = {name: int((group["barrier"] == name).sum()) for name in BARRIER_NAMES}
    minutes = (
        resolved.select((pl.col("t1") - pl.col("event_ts")).dt.total_nanoseconds().cast(pl.Float64))
        .to_series()
        .to_numpy()
        / _NANOSECONDS_PER_MINUTE
    )
    return {
        "n_events": group.height,
        "n_resolved": n_resolved,
        "class_counts": counts,
        "class_balance": {
            key: (count / n_resolved if n_resolved else None) for key, count in counts.items()
        },
        "exit_counts": barrier_counts,
        "exit_shares": {name: count / group.height for name, count in barrier_counts.items()},
        "holding_bars": _distribution(resolved["holding_bars"].cast(pl.Float64).to_numpy()),
        "holding_minutes": _distribution(minutes),
        "return": _distribution(resolved["ret"].cast(pl.Float64).to_numpy()),
    }


def label_report(labels: pl.DataFrame) -> dict[str, Any]:
    """JSON-serializable summary of a :func:`label_bars` frame, per horizon and symbol.

    ``by_horizon[str(horizon)][symbol]`` holds: ``n_events``; ``n_resolved`` (events with a known ``t1``);
    ``class_counts`` and ``class_balance`` over resolved events (keys ``"-1"``, ``"0"``, ``"1"``; shares sum
    to 1); ``exit_counts`` and ``exit_shares`` over all events per barrier (``profit_take``, ``stop_loss``,
    ``vertical``, ``none``; shares sum to 1); ``holding_bars``, ``holding_minutes`` (wall clock, so an exit in
    the next session includes the overnight break) and ``return`` distributions over resolved events
    (``count``, ``mean``, ``std``, ``quantiles`` at 5/25/50/75/95 %). Undefined numbers are None.

    Raises:
        ValueError: missing columns or an empty frame.
    """
    _check_label_frame(labels)
    horizons = sorted(int(value) for value in labels["horizon"].drop_nulls().unique().to_list())
    symbols = sorted(str(value) for value in labels["symbol"].unique().to_list())
    by_horizon: dict[str, dict[str, Any]] = {}
    for horizon in horizons:
        per_symbol: dict[str, Any] = {}
        for symbol in symbols:
            group = labels.filter((pl.col("horizon") == horizon) & (pl.col("symbol") == symbol))
            if group.height:
                per_symbol[symbol] = _group_report(group)
        by_horizon[str(horizon)] = per_symbol
    return {
        "n_events": labels.height,
        "horizons": horizons,
        "symbols": symbols,
        "by_horizon": by_horizon,
    }


def plot_label_report(labels: pl.DataFrame, path: Path) -> Path:
    """Draw the label report as one PNG: class balance, exit shares, holding periods and returns.

    Four panels: class shares (-1/0/+1) per horizon and symbol as stacked bars; exit shares per barrier
    likewise; histograms of holding periods (bars) and of exit returns, one line per horizon (symbols
    pooled). Uses an Agg canvas on a standalone Figure (no pyplot state). Returns ``path``.

    Raises:
        ValueError: missing columns or an empty frame.
    """
    _check_label_frame(labels)
    report = label_report(labels)
    groups = [
        (horizon, symbol, stats)
        for horizon, per_symbol in report["by_horizon"].items()
        for symbol, stats in per_symbol.items()
    ]
    names = [f"h{horizon}\n{symbol}" for horizon, symbol, _ in groups]
    positions = np.arange(len(groups))

    figure = Figure(figsize=(12, 8), layout="constrained")
    FigureCanvasAgg(figure)
    balance_axes, exit_axes, holding_axes, return_axes = figure.subplots(2, 2).ravel()

    bottom = np.zeros(len(groups))
    for value, color in zip(LABEL_CLASSES, ("tab:red", "tab:gray", "tab:green"), strict=True):
        shares = np.array([stats["class_balance"][str(value)] or 0.0 for _, _, stats in groups])
        balance_axes.bar(positions, shares, bottom=bottom, color=color, label=f"label {value}")
        bottom += shares
    balance_axes.set_xticks(positions, names, fontsize=7)
    balance_axes.set_ylabel("share of resolved events")
    balance_axes.set_title("Class balance")
    balance_axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))

    bottom = np.zeros(len(groups))
    for name, color in zip(BARRIER_NAMES, ("tab:green", "tab:red", "tab:blue", "tab:gray"), strict=True):
        shares = np.array([stats["exit_shares"][name] for _, _, stats in groups])
        exit_axes.bar(positions, shares, bottom=bottom, color=color, label=name)
        bottom += shares
    exit_axes.set_xticks(positions, names, fontsize=7)
    exit_axes.set_ylabel("share of events")
    exit_axes.set_title("First barrier touched")
    exit_axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))

    resolved = labels.filter(pl.col("t1").is_not_null())
    for horizon in report["horizons"]:
        block = resolved.filter(pl.col("horizon") == horizon)
        holding = block["holding_bars"].cast(pl.Float64).to_numpy()
        returns = block["ret"].cast(pl.Float64).to_numpy()
        if holding.size:
            bins = np.arange(0, horizon + 2) - 0.5
            holding_axes.hist(holding, bins=bins, histtype="step", label=f"h={horizon}")
        if returns.size:
            return_axes.hist(returns[np.isfinite(returns)], bins=80, histtype="step", label=f"h={horizon}")
    holding_axes.set_xlabel("bars from event to first barrier")
    holding_axes.set_title("Holding period")
    holding_axes.legend(fontsize=7)
    return_axes.set_xlabel("simple return at exit")
    return_axes.set_title("Exit returns")
    return_axes.legend(fontsize=7)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=90)
    return path
