"""The nightly split of the bar history: training window | purge gap | held-out validation window.

The validation window is the last ``validation_sessions`` sessions. The purge gap is the ``purge_bars`` bars
just before it (at least the longest label horizon), so no training label can reach into the validation
window. Nothing in the validation window or the gap is ever trained on.
"""

from dataclasses import dataclass
from datetime import datetime

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from market.calendar import EXCHANGE_TZ
from stairways.errors import ConfigError

__all__ = ["WindowConfig", "WindowPlan", "plan_windows"]


class WindowConfig(BaseModel):
    """How much of the history is held out for validation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    validation_sessions: int = Field(10, ge=1, description="Last sessions held out for validation.")
    min_train_sessions: int = Field(
        5, ge=1, description="Fewest whole sessions the training window may have."
    )


@dataclass(frozen=True)
class WindowPlan:
    """Bounds (UTC bar starts, inclusive) of the training and validation windows and the gap between them."""

    train_start: datetime
    train_end: datetime
    validation_start: datetime
    validation_end: datetime
    purge_bars: int

    def train_mask(self, ts: pl.Expr | None = None) -> pl.Expr:
        """Rows inside the training window."""
        column = pl.col("ts") if ts is None else ts
        return column.is_between(self.train_start, self.train_end, closed="both")

    def validation_mask(self, ts: pl.Expr | None = None) -> pl.Expr:
        """Rows inside the held-out validation window."""
        column = pl.col("ts") if ts is None else ts
        return column.is_between(self.validation_start, self.validation_end, closed="both")

    def as_dict(self) -> dict[str, str | int]:
        return {
            "train_start": self.train_start.isoformat(),
            "train_end": self.train_end.isoformat(),
            "validation_start": self.validation_start.isoformat(),
            "validation_end": self.validation_end.isoformat(),
            "purge_bars": self.purge_bars,
        }


def plan_windows(timestamps: pl.Series, *, config: WindowConfig, purge_bars: int) -> WindowPlan:
    """Split the distinct bar timestamps into training window, purge gap and validation window.

    Raises ``ConfigError`` when the history is too short for the held-out sessions, the gap and the minimum
    training window.
    """
    if purge_bars < 0:
        msg = f"purge_bars must be >= 0, got {purge_bars}"
        raise ConfigError(msg)
    grid = pl.DataFrame({"ts": timestamps}).unique().sort("ts")
    grid = grid.with_columns(pl.col("ts").dt.convert_time_zone(str(EXCHANGE_TZ)).dt.date().alias("session"))
    sessions = grid.get_column("session").unique().sort()
    needed = config.validation_sessions + config.min_train_sessions
    if sessions.len() < needed:
        msg = (
            f"{sessions.len()} sessions of bars are too few: window.validation_sessions="
            f"{config.validation_sessions} plus window.min_train_sessions={config.min_train_sessions} need {needed}"
        )
        raise ConfigError(msg)
    first_validation_session = sessions[sessions.len() - config.validation_sessions]
    before = grid.filter(pl.col("session") < first_validation_session)
    validation = grid.filter(pl.col("session") >= first_validation_session)
    train = before.head(max(before.height - purge_bars, 0))
    train_sessions = train.get_column("session").n_unique() if train.height else 0
    if train_sessions < config.min_train_sessions:
        msg = (
            f"the training window keeps {train_sessions} sessions after a purge gap of {purge_bars} bars; "
            f"window.min_train_sessions is {config.min_train_sessions}: use fewer validation sessions or more data"
        )
        raise ConfigError(msg)
    return WindowPlan(
        train_start=train.get_column("ts").min(),  # type: ignore[arg-type]
        train_end=train.get_column("ts").max(),  # type: ignore[arg-type]
        validation_start=validation.get_column("ts").min(),  # type: ignore[arg-type]
        validation_end=validation.get_column("ts").max(),  # type: ignore[arg-type]
        purge_bars=purge_bars,
    )
