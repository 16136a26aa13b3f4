"""Tolerances of the bar-quality suite (:class:`QCThresholds`), the ``qc:`` section of the configuration.

Configuration only: :func:`validation.qc_suite.build_suite` turns them into expectations.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["QCThresholds"]


class QCThresholds(BaseModel):
    """Tolerances of the bar-quality suite."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_session_completeness: float = Field(
        default=0.95,
        gt=0.0,
        le=1.0,
        description="Minimum share of a session's expected bars (from the calendar) that must be present.",
    )
    outlier_z: float = Field(
        default=12.0,
        gt=0.0,
        description="A 1-bar log return whose robust z-score exceeds this (in absolute value) is an outlier.",
    )
    outlier_window_bars: int = Field(
        default=390,
        ge=10,
        description="Trailing window, in past intraday returns, of the median and MAD behind the z-score.",
    )
    max_outlier_share: float = Field(
        default=0.001,
        ge=0.0,
        lt=1.0,
        description="Largest tolerated share of scored returns that are outliers.",
    )
    max_stale_run_bars: int = Field(
        default=30,
        ge=1,
        description="Longest tolerated run of consecutive bars with an identical close within a session.",
    )
    min_sessions: int = Field(
        default=5,
        ge=1,
        description="Minimum number of sessions per symbol, whatever the windows need.",
    )
    min_session_volume_ratio: float = Field(
        default=0.1,
        ge=0.0,
        lt=1.0,
        description="A session whose total volume is below this share of the median of the symbol's previous "
        "volume_median_sessions sessions is suspect (a vendor feed change); 0 disables the check.",
    )
    volume_median_sessions: int = Field(
        default=20, ge=1, description="Earlier sessions whose median volume a session is compared with."
    )
    low_volume_sessions: Literal["fail", "drop"] = Field(
        default="fail",
        description="`fail`: QC fails and names the sessions; `drop`: they are dropped as a counted repair.",
    )
    drop_partial_final_session: bool = Field(
        default=True,
        description="Drop the last session as a counted repair when it ends before the close (an export "
        "taken during the day) instead of failing session completeness.",
    )
