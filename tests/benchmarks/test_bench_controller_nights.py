"""benchmarks/bench_controller_nights.py: the arms, the goal and the table, with the nights faked."""

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import bench_controller_nights as bench


def fake_night(trades: dict[str, float]) -> Any:
    def night(seed: int, *, controller_enabled: bool, output_dir: Path, target: float | None = None) -> dict[str, Any]:
        arm = "greedy" if controller_enabled else "off"
        shift = 0.0 if target is None else target - 15.0
        return {
            "seed": seed,
            "best_checkpoint": f"{arm}:{trades[arm] + seed + shift}",
            "gate_passed": False,
            "test": {"total_return_pct": 0.1 * seed, "sharpe": 1.0, "max_drawdown_pct": 0.5, "trades_per_day": 9.0},
            "wall_seconds": 1.0,
        }

    return night


def fake_selection(checkpoint: Path, seed: int, *, target: float | None = None) -> dict[str, float]:
    trades = float(str(checkpoint).split(":")[1])
    return {
        "trades_per_day": trades,
        "target_trades_per_day": 18.0,
        "trades_error": trades - 18.0,
        "idle_rate": 0.95,
        "idle_target": 1 - 18.0 / 389,
        "idle_error": 0.95 - (1 - 18.0 / 389),
        "hold_action_rate": 0.3,
        "score": 0.0,
    }


def test_the_table_and_summary_compare_the_arms(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bench, "night", fake_night({"off": 30.0, "greedy": 17.0}))
    monkeypatch.setattr(bench, "_selection_behaviour", fake_selection)
    output = tmp_path / "nights.json"
    arguments = ["--seeds", "1", "2", "--arms", "off", "greedy", "--target-sweep", "12", "--output", str(output)]
    assert bench.main(arguments) == 0
    report = json.loads(output.read_text())
    assert report["summary"]["greedy"]["goal_met"] == 2
    assert report["summary"]["off"]["goal_met"] == 0
    assert report["summary"]["off"]["mean_abs_trades_error"] == pytest.approx(13.5)
    printed = capsys.readouterr().out
    assert "greedy   : goal met 2/2" in printed
    assert "off      : goal met 0/2" in printed
    assert report["target_sweep"]["12"]["mean_trades_per_day"] == pytest.approx(15.5)
    assert report["target_sweep"]["15"]["mean_trades_per_day"] == pytest.approx(18.5)
    assert "base target 12: deployed trades/day mean 15.5" in printed


def test_the_previous_design_is_extracted_from_git(tmp_path: Path) -> None:
    tree = bench._previous_tree("HEAD", tmp_path / "tree")
    assert (tree / "controllers" / "reward.py").is_file()
