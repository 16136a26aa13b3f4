"""The nightly split of the bar history, in time order: training | purge | selection | purge | test.

* The **test window** is the last ``test_sessions`` sessions. It is read only after the candidate is fixed:
  by the gate's held-out scenarios, the champion comparison and the replay check.
* The **selection window** is the ``selection_sessions`` sessions before it, less a purge gap of
  ``purge_bars`` bars at its end. It scores the training cycles, drives early stopping and picks the best
  cycle (later it is the tuning objective). It never trains.
* The **training window** is everything before the selection window, less a purge gap of ``purge_bars``
  bars at its end. Only it is trained on.

Each purge gap (at least the longest label horizon) keeps any label that starts in one window from reaching
into the next, so the signal model of a later window never learns a label of an earlier window's decisions
that is still open, and no episode of one window shares a bar with another. Nothing in a gap is evaluated.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.errors import ConfigError
from market.calendar import EXCHANGE_TZ

__all__ = ["WINDOW_NAMES", "WindowConfig", "WindowPlan", "plan_windows"]

WINDOW_NAMES: tuple[str, ...] = ("train", "selection", "test")


class WindowConfig(BaseModel):
    """How many sessions pick the candidate (selection) and how many judge it (test)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    selection_sessions: int = Field(
        10,
        ge=1,
        description="Sessions before the test window that score cycles, early-stop and pick the best one.",
    )
    test_sessions: int = Field(
        10,
        ge=1,
        description="Last sessions, read only by the gate, the champion comparison and the replay.",
    )
    min_train_sessions: int = Field(
        5, ge=1, description="Fewest whole sessions the training window may have."
    )

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, values: Any) -> Any:
        if isinstance(values, dict) and "validation_sessions" in values:
            msg = (
                "window.validation_sessions was split into window.selection_sessions (picks the candidate) "
                "and window.test_sessions (judges it): set those instead"
            )
            raise ValueError(msg)
        return values


@dataclass(frozen=True)
class WindowPlan:
    """Bounds (UTC bar starts, inclusive) of the three windows; ``purge_bars`` bars separate neighbours."""

    train_start: datetime
    train_end: datetime
    selection_start: datetime
    selection_end: datetime
    test_start: datetime
    test_end: datetime
    purge_bars: int

    def bounds(self, window: str) -> tuple[datetime, datetime]:
        """First and last bar start of ``window`` (one of :data:`WINDOW_NAMES`)."""
        if window not in WINDOW_NAMES:
            msg = f"unknown window {window!r}; windows are {list(WINDOW_NAMES)}"
            raise ValueError(msg)
        return getattr(self, f"{window}_start"), getattr(self, f"{window}_end")

    def mask(self, window: str, ts: pl.Expr | None = None) -> pl.Expr:
        """Rows inside ``window``."""
        start, end = self.bounds(window)
        column = pl.col("ts") if ts is None else ts
        return column.is_between(start, end, closed="both")

    def train_mask(self, ts: pl.Expr | None = None) -> pl.Expr:
        """Rows inside the training window."""
        return self.mask("train", ts)

    def selection_mask(self, ts: pl.Expr | None = None) -> pl.Expr:
        """Rows inside the selection window."""
        return self.mask("selection", ts)

    def test_mask(self, ts: pl.Expr | None = None) -> pl.Expr:
        """Rows inside the test window."""
        return self.mask("test", ts)

    def as_dict(self) -> dict[str, str | int]:
        """ISO bounds of every window and the purge gap, for tracking and reports."""
        bounds: dict[str, str | int] = {}
        for window in WINDOW_NAMES:
            start, end = self.bounds(window)
            bounds[f"{window}_start"] = start.isoformat()
            bounds[f"{window}_end"] = end.isoformat()
        bounds["purge_bars"] = self.purge_bars
        return bounds


def _first_and_last(frame: pl.DataFrame) -> tuple[datetime, datetime]:
    column = frame.get_column("ts")
    return column.min(), column.max()  # type: ignore[return-value]


def plan_windows(timestamps: pl.Series, *, config: WindowConfig, purge_bars: int) -> WindowPlan:
    """Split the distinct bar timestamps into training, selection and test windows with purge gaps between.

    Raises ``ConfigError`` when the history is too short for the test and selection sessions, the two gaps
    and the minimum training window.
    """
    if purge_bars < 0:
        msg = f"purge_bars must be >= 0, got {purge_bars}"
        raise ConfigError(msg)
    grid = pl.DataFrame({"ts": timestamps}).unique().sort("ts")
    grid = grid.with_columns(pl.col("ts").dt.convert_time_zone(str(EXCHANGE_TZ)).dt.date().alias("session"))
    sessions = grid.get_column("session").unique().sort()
    needed = config.test_sessions + config.selection_sessions + config.min_train_sessions
    if sessions.len() < needed:
        msg = (
            f"{sessions.len()} sessions of bars are too few: window.test_sessions={config.test_sessions} plus "
            f"window.selection_sessions={config.selection_sessions} plus window.min_train_sessions="
            f"{config.min_train_sessions} need {needed}"
        )
        raise ConfigError(msg)
    first_test_session = sessions[sessions.len() - config.test_sessions]
    first_selection_session = sessions[sessions.len() - config.test_sessions - config.selection_sessions]
    test = grid.filter(pl.col("session") >= first_test_session)
    before_test = grid.filter(
        (pl.col("session") >= first_selection_session) & (pl.col("session") < first_test_session)
    )
    selection = before_test.head(max(before_test.height - purge_bars, 0))
    if selection.height == 0:
        msg = (
            f"the selection window's {config.selection_sessions} sessions have {before_test.height} bars, "
            f"all taken by the purge gap of {purge_bars} bars: use more window.selection_sessions"
        )
        raise ConfigError(msg)
    before_selection = grid.filter(pl.col("session") < first_selection_session)
    train = before_selection.head(max(before_selection.height - purge_bars, 0))
    train_sessions = train.get_column("session").n_unique() if train.height else 0
    if train_sessions < config.min_train_sessions:
        msg = (
            f"the training window keeps {train_sessions} sessions after a purge gap of {purge_bars} bars; "
            f"window.min_train_sessions is {config.min_train_sessions}: use fewer selection or test sessions "
            "or more data"
        )
        raise ConfigError(msg)
    train_start, train_end = _first_and_last(train)
    selection_start, selection_end = _first_and_last(selection)
    test_start, test_end = _first_and_last(test)
    return WindowPlan(
        train_start=train_start,
        train_end=train_end,
        selection_start=selection_start,
        selection_end=selection_end,
        test_start=test_start,
        test_end=test_end,
        purge_bars=purge_bars,
    )
