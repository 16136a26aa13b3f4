"""benchmarks/bench_gate.py: a false promotion on the null market fails the benchmark; a short real run."""

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import bench_gate


def fake_night(passes: dict[str, bool]) -> Any:
    def night(mode: str, seed: int, *, kickstart: bool = True) -> dict[str, Any]:
        figures = dict.fromkeys(bench_gate.FIGURES, 0.0)
        return {
            "mode": mode,
            "seed": seed,
            "kickstart": kickstart,
            "agent_passed": passes[mode],
            "agent_reason": "",
            "signal_rule_passed": False,
            "signal_rule_reason": "",
            "cycles": 1,
            "agent_test_mixed": figures,
            "paired": {},
            "deflated_sharpe": {},
            "wall_seconds": 0.0,
        }

    return night


@pytest.mark.parametrize(("null_passes", "expected"), [(False, 0), (True, 1)])
def test_a_null_night_that_promotes_fails_the_benchmark(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, null_passes: bool, expected: int
) -> None:
    monkeypatch.setattr(bench_gate, "night", fake_night({"planted": True, "martingale": null_passes}))
    output = tmp_path / "gate.json"
    code = bench_gate.main(["--planted-seeds", "1", "2", "--null-seeds", "1", "--output", str(output)])
    assert code == expected
    report = json.loads(output.read_text())
    assert report["false_promotions"] == int(null_passes)
    assert report["planted_kickstart_on"] == {"passed": 2, "nights": 2, "rate": 1.0}
    assert report["planted_kickstart_off"]["nights"] == 2
    assert report["null_agent"]["nights"] == 1


@pytest.mark.slow
def test_a_short_real_run_of_the_gate_benchmark(tmp_path: Path) -> None:
    """The slow CI's shortened benchmark: one planted and one null night at the real budget."""
    output = tmp_path / "gate.json"
    code = bench_gate.main(
        ["--planted-seeds", "1", "--null-seeds", "1", "--kickstart", "on", "--output", str(output)]
    )
    report = json.loads(output.read_text())
    assert code == 0
    assert report["false_promotions"] == 0
    assert report["planted_kickstart_on"]["nights"] == 1
    planted = report["nights"][0]
    assert (
        planted["mode"] == "planted"
        and planted["windows"]["test_start"] > planted["windows"]["selection_end"]
    )
