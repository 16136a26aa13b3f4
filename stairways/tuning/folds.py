"""Walk-forward folds for tuning, cut from the history before the night's test window.

:func:`tuning_history` finds the night's windows (the same plan as the nightly flow) and keeps only the bars
up to the end of the selection window: the test window and the purge gap before it are dropped before
anything else reads the data, so no trial, fold, feature, label or signal can see a test-window bar.

:func:`plan_folds` then cuts ``folds`` walk-forward folds from that history. Fold ``k`` is the nightly
recipe run as if the night were at the end of judged block ``k``: its own training | purge | selection |
purge | judged windows (:func:`validation.windows.plan_windows` on the history up to the block's end), so a
trial is scored exactly the way a night is judged, on ``folds`` consecutive blocks of ``fold_sessions``
sessions each, the last one ending where the night's selection window ends.
"""

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import polars as pl

from core.errors import ConfigError
from market.calendar import EXCHANGE_TZ
from market.normalize import NormalizedBars
from stairways.config import RetrainConfig
from stairways.pipeline import split_windows
from validation.windows import WindowConfig, WindowPlan, plan_windows

__all__ = ["Fold", "FoldPlan", "plan_folds", "tuning_history"]


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold: the nightly windows of a night held at the end of its judged block."""

    index: int
    end: datetime
    """Last bar start of the fold's history (the end of its judged window)."""
    plan: WindowPlan
    """The fold's training, selection and judged (``test``) windows."""

    def as_dict(self) -> dict[str, Any]:
        return {"fold": self.index, "end": self.end.isoformat(), **self.plan.as_dict()}


@dataclass(frozen=True)
class FoldPlan:
    """The folds of a study and the cut-off that keeps the test window out."""

    cutoff: datetime
    """First bar start of the night's test window: no bar at or after it is in the tuning history."""
    history_end: datetime
    """Last bar start kept (the end of the night's selection window, before the purge gap)."""
    folds: tuple[Fold, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "test_window_starts": self.cutoff.isoformat(),
            "history_ends": self.history_end.isoformat(),
            "folds": [fold.as_dict() for fold in self.folds],
        }


def tuning_history(prepared: NormalizedBars, config: RetrainConfig) -> tuple[NormalizedBars, WindowPlan]:
    """The bars before the night's test window less its purge gap, and the night's window plan."""
    night = split_windows(prepared.bars, config)
    kept = prepared.bars.filter(pl.col("ts") <= night.selection_end)
    return replace(prepared, bars=kept), night


def _sessions(timestamps: pl.Series) -> pl.DataFrame:
    grid = pl.DataFrame({"ts": timestamps}).unique().sort("ts")
    return grid.with_columns(pl.col("ts").dt.convert_time_zone(str(EXCHANGE_TZ)).dt.date().alias("session"))


def plan_folds(
    history: NormalizedBars,
    night: WindowPlan,
    config: RetrainConfig,
    *,
    folds: int,
    fold_sessions: int,
    selection_sessions: int,
) -> FoldPlan:
    """``folds`` walk-forward folds whose judged blocks of ``fold_sessions`` sessions tile the history's end.

    Raises ``ConfigError`` when the history is too short for the folds (naming what they need).
    """
    grid = _sessions(history.bars.get_column("ts"))
    sessions = grid.get_column("session").unique().sort()
    purge = max(config.labels.horizons)
    window = WindowConfig(
        selection_sessions=selection_sessions,
        test_sessions=fold_sessions,
        min_train_sessions=config.window.min_train_sessions,
    )
    needed = folds * fold_sessions + selection_sessions + config.window.min_train_sessions
    if sessions.len() < needed:
        msg = (
            f"the history before the test window has {sessions.len()} sessions; {folds} folds of {fold_sessions} "
            f"judged sessions need {needed} (plus {selection_sessions} selection and "
            f"window.min_train_sessions={config.window.min_train_sessions}): use fewer or shorter folds or more data"
        )
        raise ConfigError(msg)
    planned: list[Fold] = []
    for index in range(folds):
        last_session = sessions[sessions.len() - 1 - (folds - 1 - index) * fold_sessions]
        times = grid.filter(pl.col("session") <= last_session).get_column("ts")
        plan = plan_windows(times, config=window, purge_bars=purge)
        planned.append(Fold(index=index, end=times.max(), plan=plan))  # type: ignore[arg-type]
    return FoldPlan(cutoff=night.test_start, history_end=night.selection_end, folds=tuple(planned))
