"""The night report's figures, each a PNG embedded as a ``data:`` URI (the report is one self-contained file).

Standalone ``matplotlib.figure.Figure`` objects on the Agg canvas: no pyplot global state, safe in a worker.
Every function takes plain data and returns the ``data:image/png;base64,...`` string (``""`` when there is
nothing to draw).
"""

import base64
import io
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from core.spec import ACTION_MEANINGS
from envs.evaluation import EpisodeRecord

__all__ = [
    "compounded",
    "controller_figure",
    "drawdown",
    "equity_figure",
    "learning_figure",
    "session_figure",
]

_LEARNING_PANELS = (
    ("entropy", "policy entropy"),
    ("value_loss", "value loss"),
    ("approx_kl", "approximate KL"),
    ("explained_variance", "explained variance"),
)


def _encoded(figure: Figure) -> str:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def compounded(returns: Sequence[float]) -> np.ndarray:
    """Growth of 1 over the sessions in order, starting at 1 before the first: ``(n + 1,)``."""
    return np.concatenate([[1.0], np.cumprod(1.0 + np.asarray(returns, dtype=np.float64))])


def drawdown(equity: np.ndarray) -> np.ndarray:
    """Fractional drawdown from the running peak (<= 0), same shape as ``equity``."""
    return equity / np.maximum.accumulate(equity) - 1.0


def learning_figure(curves: Mapping[int, pl.DataFrame]) -> str:
    """PPO's update statistics against env steps, one line per cycle (entropy, value loss, KL, explained variance)."""
    drawn = {cycle: curve for cycle, curve in curves.items() if curve.height and "step" in curve.columns}
    if not drawn:
        return ""
    figure = Figure(figsize=(10, 6))
    axes = figure.subplots(2, 2).ravel()
    for axis, (column, title) in zip(axes, _LEARNING_PANELS, strict=True):
        for cycle, curve in drawn.items():
            if column in curve.columns:
                axis.plot(curve["step"].to_numpy(), curve[column].to_numpy(), label=f"cycle {cycle}")
        axis.set_title(title)
        axis.set_xlabel("env steps")
    axes[0].legend(fontsize="small")
    figure.tight_layout()
    return _encoded(figure)


def controller_figure(trajectories: Mapping[int, pl.DataFrame]) -> str:
    """The reward controller per rollout over the cycles: trades/day against the target; bonus and ticket cost."""
    frames = [frame for frame in trajectories.values() if frame.height]
    if not frames:
        return ""
    frame = pl.concat(frames, how="diagonal_relaxed")
    rollout = np.arange(frame.height)
    figure = Figure(figsize=(10, 5))
    top, bottom = figure.subplots(2, 1, sharex=True)
    top.plot(rollout, frame["greedy_trades_per_day"].to_numpy(), label="greedy trades/day")
    top.plot(rollout, frame["sampled_trades_per_day"].to_numpy(), label="sampled trades/day", alpha=0.6)
    top.plot(rollout, frame["target_trades_per_day"].to_numpy(), "k--", label="target")
    top.set_ylabel("trades per day")
    top.legend(fontsize="small")
    bottom.plot(rollout, frame["hold_bonus"].to_numpy(), label="hold bonus")
    bottom.plot(rollout, frame["ticket_cost"].to_numpy(), label="ticket cost")
    bottom.set_ylabel("shaping")
    bottom.set_xlabel("rollout (all cycles, in order)")
    bottom.legend(fontsize="small")
    cycles = frame["cycle"].to_numpy()
    for boundary in np.flatnonzero(np.diff(cycles)) + 0.5:
        top.axvline(boundary, color="grey", lw=0.8)
        bottom.axvline(boundary, color="grey", lw=0.8)
    figure.tight_layout()
    return _encoded(figure)


def equity_figure(returns: Mapping[str, Sequence[float]], sessions: Sequence[str]) -> str:
    """Compounded equity (growth of 1) and drawdown per policy over the test window's sessions."""
    drawn = {name: values for name, values in returns.items() if len(values)}
    if not drawn:
        return ""
    figure = Figure(figsize=(10, 6))
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    for name, values in drawn.items():
        equity = compounded(values)
        style = {"lw": 2.2} if name == "candidate" else {"lw": 1.2}
        top.plot(equity, label=name, **style)
        bottom.plot(100.0 * drawdown(equity), label=name, **style)
    top.axhline(1.0, color="grey", lw=0.8)
    top.set_ylabel("growth of 1")
    top.legend(fontsize="small")
    bottom.set_ylabel("drawdown %")
    count = len(sessions)
    ticks = np.linspace(0, count, num=min(count + 1, 6)).round().astype(int) if count else np.array([0])
    bottom.set_xticks(ticks)
    bottom.set_xticklabels(["start" if tick == 0 else sessions[tick - 1] for tick in ticks], fontsize="small")
    bottom.set_xlabel("after session")
    figure.tight_layout()
    return _encoded(figure)


def session_figure(record: EpisodeRecord, symbols: Sequence[str]) -> str:
    """One session: both prices (relative to the open), both positions, and the agent's actions as markers."""
    figure = Figure(figsize=(10, 6))
    prices, positions, actions = figure.subplots(
        3, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1.3, 1]}
    )
    bars = np.arange(record.close.shape[0])
    for column, symbol in enumerate(symbols):
        prices.plot(bars, 100.0 * (record.close[:, column] / record.close[0, column] - 1.0), label=symbol)
        positions.step(bars, record.positions[:, column], where="post", label=symbol)
    prices.set_ylabel("price vs first bar %")
    prices.legend(fontsize="small")
    positions.set_ylabel("position (units)")
    positions.set_ylim(-1.1, 1.1)
    positions.legend(fontsize="small")
    meanings = ACTION_MEANINGS
    steps = np.arange(1, record.actions.shape[0] + 1)
    actions.scatter(steps, record.actions, s=4)
    actions.set_yticks(range(len(meanings)))
    actions.set_yticklabels(list(meanings), fontsize="x-small")
    actions.set_ylabel(f"action ({'/'.join(symbols)})", fontsize="small")
    actions.set_xlabel(f"bar of session {record.session}")
    figure.tight_layout()
    return _encoded(figure)
