"""Tests for controllers/trajectory.py: per-rollout records as a frame and JSON, and the trajectory plot."""

import json
import math
from pathlib import Path

import polars as pl
import pytest

from controllers.reward import AdaptiveRewardController
from controllers.trajectory import ControllerTrajectory, plot_trajectory
from tests.controllers.support import observe


def test_trajectory_records_one_row_per_rollout() -> None:
    controller = AdaptiveRewardController()
    trajectory = ControllerTrajectory()
    for rollout in range(6):
        trajectory.append(observe(controller, 10.0 * rollout, regime_score=-0.5))
    frame = trajectory.to_frame()
    assert frame.height == len(trajectory) == 6
    assert frame["rollouts"].to_list() == [1, 2, 3, 4, 5, 6]
    assert frame.schema["steps"] == pl.Int64
    assert frame.schema["hold_bonus"] == pl.Float64
    assert frame["target_trades_per_day"].to_list() == pytest.approx([18.0] * 6)
    assert frame["sampled_trades_per_day"].null_count() == 6  # not given: recorded as missing, not as zero
    assert json.loads(trajectory.to_json())["rollouts"][-1] == 6


def test_empty_trajectory_frame_has_the_schema() -> None:
    frame = ControllerTrajectory().to_frame()
    assert frame.height == 0
    assert frame.columns[:3] == ["steps", "rollouts", "cycle"]


def test_plot_trajectory_writes_a_png(tmp_path: Path) -> None:
    controller = AdaptiveRewardController()
    trajectory = ControllerTrajectory()
    for rollout in range(24):
        trajectory.append(observe(controller, 40.0 - rollout, regime_score=math.sin(rollout / 4.0)))
    path = plot_trajectory(trajectory, tmp_path / "plots" / "controller.png")
    assert path == tmp_path / "plots" / "controller.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000


def test_plot_of_empty_trajectory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        plot_trajectory(ControllerTrajectory(), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
