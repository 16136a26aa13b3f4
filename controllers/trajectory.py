"""The reward controller's trajectory: one snapshot per rollout, as a frame, as JSON and as a plot.

:class:`ControllerSnapshot` is the state :meth:`controllers.reward.AdaptiveRewardController.observe`
returns after each rollout's update; :class:`ControllerTrajectory` records them and :func:`plot_trajectory`
draws them. The controller's health (:mod:`controllers.health`) is computed from the trajectory's frame.
"""

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from controllers.reward_config import RewardControllerConfig

__all__ = [
    "ControllerSnapshot",
    "ControllerTrajectory",
    "plot_trajectory",
]


@dataclass(frozen=True, slots=True)
class ControllerSnapshot:
    """The controller after one rollout's update, for trajectories, plots and health."""

    steps: int
    rollouts: int
    cycle: int
    regime_score: float
    target_trades_per_day: float
    setpoint_trades_per_day: float
    target_scale: float
    greedy_trades_per_day: float
    sampled_trades_per_day: float
    greedy_idle_rate: float
    greedy_hold_action_rate: float
    sampled_hold_action_rate: float
    smoothed_trades_per_day: float
    error: float
    slow_adjustment: float
    hold_bonus: float
    ticket_cost: float

_SNAPSHOT_FIELDS: tuple[str, ...] = tuple(field.name for field in fields(ControllerSnapshot))
_INT_FIELDS = frozenset({"steps", "rollouts", "cycle"})


class ControllerTrajectory:
    """The controller's snapshots, one per rollout, kept as plain Python lists of numbers."""

    __slots__ = ("_columns",)

    def __init__(self) -> None:
        self._columns: dict[str, list[Any]] = {name: [] for name in _SNAPSHOT_FIELDS}

    def __len__(self) -> int:
        return len(self._columns["steps"])

    def append(self, snapshot: ControllerSnapshot) -> None:
        """Record one snapshot."""
        for name in _SNAPSHOT_FIELDS:
            self._columns[name].append(getattr(snapshot, name))

    def to_frame(self) -> pl.DataFrame:
        """One row per rollout; ``steps``, ``rollouts`` and ``cycle`` as Int64, every other column Float64."""
        schema = {name: (pl.Int64 if name in _INT_FIELDS else pl.Float64) for name in _SNAPSHOT_FIELDS}
        return pl.DataFrame(self._columns, schema=schema).fill_nan(None)

    def to_json(self) -> str:
        """The records as a JSON object of column lists (NaN as null)."""
        return json.dumps(
            {
                name: [None if isinstance(value, float) and math.isnan(value) else value for value in values]
                for name, values in self._columns.items()
            }
        )


def plot_trajectory(
    trajectory: ControllerTrajectory | pl.DataFrame,
    path: Path,
    *,
    title: str = "",
    config: RewardControllerConfig = RewardControllerConfig(),
) -> Path:
    """Write a PNG: greedy vs sampled trades/day against the target, idle shares, bonus and cost (as multiples
    of ``config``'s bases), slow lane, setpoint scale and regime score, per rollout.

    Uses a standalone ``matplotlib.figure.Figure`` with the Agg canvas (no pyplot global state). Returns
    ``path``; raises ``ValueError`` for an empty trajectory.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    frame = trajectory.to_frame() if isinstance(trajectory, ControllerTrajectory) else trajectory
    if frame.height == 0:
        msg = "cannot plot an empty controller trajectory: record at least one rollout"
        raise ValueError(msg)

    def column(name: str) -> Any:
        return frame[name].cast(pl.Float64).fill_null(float("nan")).to_numpy()

    steps = frame["steps"].to_numpy()
    figure = Figure(figsize=(10, 12), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(5, 1, sharex=True)
    greedy = column("greedy_trades_per_day")
    setpoint = column("setpoint_trades_per_day")
    axes[0].plot(steps, greedy, marker="o", label="greedy (deployed)")
    axes[0].plot(steps, column("target_trades_per_day"), linestyle="--", color="black", label="target")
    axes[0].plot(steps, setpoint, linestyle=":", color="gray", label="setpoint (target x outer-loop scale)")
    axes[0].set_ylim(0.0, 1.4 * max(float(np.nanmax(greedy)), float(np.nanmax(setpoint)), 1.0))
    axes[0].set_ylabel("greedy trades / day")
    sampled_axis = axes[0].twinx()
    sampled_axis.plot(steps, column("sampled_trades_per_day"), color="tab:orange", alpha=0.5, label="sampled")
    sampled_axis.set_ylabel("sampled (exploring) trades / day", color="tab:orange")
    axes[0].legend(loc="upper right", fontsize="small")
    axes[1].plot(steps, column("greedy_idle_rate"), marker="o", label="greedy idle share (no order)")
    axes[1].plot(steps, column("greedy_hold_action_rate"), label="greedy hold/hold share")
    axes[1].plot(steps, column("sampled_hold_action_rate"), alpha=0.6, label="sampled hold/hold share")
    axes[1].set_ylim(0.0, 1.02)
    axes[1].set_ylabel("share of steps")
    axes[1].legend(loc="center right", fontsize="small")
    bonus_base = config.base_hold_bonus or 1.0
    cost_base = config.base_ticket_cost or 1.0
    axes[2].plot(steps, column("hold_bonus") / bonus_base, color="tab:green", label="hold bonus / base")
    axes[2].plot(
        steps, column("ticket_cost") / cost_base, color="tab:red", linestyle="--", label="ticket cost / base"
    )
    axes[2].axhline(1.0, color="gray", linewidth=0.8)
    axes[2].set_ylabel("output / base")
    axes[2].legend(loc="upper right", fontsize="small")
    axes[3].plot(steps, column("slow_adjustment"), label="slow lane")
    axes[3].plot(steps, column("error"), alpha=0.6, label="relative error")
    axes[3].set_ylim(-1.05, 1.05)
    axes[3].legend(loc="upper right", fontsize="small")
    axes[3].set_ylabel("lanes")
    axes[4].plot(steps, column("regime_score"), label="regime score")
    axes[4].set_ylim(-1.05, 1.05)
    axes[4].set_ylabel("regime score")
    offset_axis = axes[4].twinx()
    offset_axis.plot(steps, column("target_scale"), color="tab:purple", label="setpoint scale")
    offset_axis.set_ylabel("setpoint scale (outer loop)")
    axes[4].set_xlabel("env step")
    for axis in axes:
        axis.grid(alpha=0.3)
    figure.suptitle(title or "Adaptive reward controller (per rollout)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100)
    return path
