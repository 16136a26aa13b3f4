"""The window that judges the candidate never chooses it: test-window bars cannot move the candidate.

The nightly stages (:mod:`stairways.pipeline`) up to a fixed candidate run twice, once on the real bars and
once with every bar of the test window changed; the candidate's checkpoint files, the chosen cycle and every
selection score must be identical. A control run that changes the selection window instead must change
something, so the comparison has teeth.
"""

import hashlib
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from stairways import pipeline
from stairways.config import RetrainConfig
from training.checkpoints import CONTROLLER_FILE, MODEL_FILE, NORMALIZATION_FILE
from training.cycles import run_cycles

CONFIG = RetrainConfig.model_validate(
    {
        "seed": 4,
        "data": {"synthetic": {"sessions": 16}},
        "window": {"selection_sessions": 3, "test_sessions": 3, "min_train_sessions": 4},
        "training": {
            "cycles": 2,
            "steps_per_cycle": 512,
            "progress_bar": False,
            "ppo": {"n_envs": 2, "n_steps": 64, "batch_size": 64},
            "imitation": {"steps": 512, "epochs": 2, "min_teacher_trades_per_session": 0.0},
        },
    }
)


def _perturb(bars: pl.DataFrame, mask: pl.Expr, *, seed: int) -> pl.DataFrame:
    """Every bar inside ``mask`` scaled by its own random factor (OHLC kept consistent), volume doubled."""
    factor = pl.Series(np.random.default_rng(seed).uniform(0.9, 1.1, bars.height))
    scaled = bars.with_columns(factor.alias("_factor"))
    scaled = scaled.with_columns(
        [
            pl.when(mask).then(pl.col(name) * pl.col("_factor")).otherwise(pl.col(name)).alias(name)
            for name in ("open", "high", "low", "close")
        ]
        + [pl.when(mask).then(pl.col("volume") * 2).otherwise(pl.col("volume")).alias("volume")]
    )
    return scaled.drop("_factor")


def _candidate(bars: pl.DataFrame, work: Path) -> dict[str, Any]:
    prepared = pipeline.prepare_bars(bars, CONFIG)
    features = pipeline.features_for(prepared, CONFIG)
    labels = pipeline.labels_for(prepared, CONFIG)
    plan = pipeline.split_windows(features, CONFIG)
    signal = pipeline.signal_for(features, labels, plan, CONFIG)
    data = pipeline.training_data(prepared, features, signal, plan, CONFIG)
    outcome = run_cycles(
        train=data.train, selection=data.selection, config=CONFIG.training, seed=CONFIG.seed, output_dir=work
    )
    files = _state_digests(outcome.best_checkpoint)
    return {
        "plan": plan,
        "files": files,
        "best_cycle": outcome.best_cycle,
        "scores": [cycle.evaluation["score"] for cycle in outcome.cycles],
        "selection_returns": [cycle.selection_returns for cycle in outcome.cycles],
        "test_signal": signal.signal.filter(plan.test_mask()).get_column("signal"),
    }


def _state_digests(checkpoint: Path) -> dict[str, str]:
    """SHA-256 of everything the candidate's behaviour depends on: the tensors inside SB3's zip (policy
    weights, optimizer state), the normalization statistics and the controller state. The zip's other
    members carry wall-clock times (entry dates, SB3's ``start_time``), so its raw bytes differ run to run."""
    digests = {}
    with zipfile.ZipFile(checkpoint / MODEL_FILE) as archive:
        for name in sorted(archive.namelist()):
            if name.endswith(".pth"):
                digests[name] = hashlib.sha256(archive.read(name)).hexdigest()
    for name in (NORMALIZATION_FILE, CONTROLLER_FILE):
        digests[name] = hashlib.sha256((checkpoint / name).read_bytes()).hexdigest()
    return digests


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return pipeline.load_market(CONFIG).bars


@pytest.fixture(scope="module")
def reference(bars: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _candidate(bars, tmp_path_factory.mktemp("reference"))


def test_changing_the_test_window_leaves_the_candidate_byte_identical(
    bars: pl.DataFrame, reference: dict[str, Any], tmp_path: Path
) -> None:
    plan = reference["plan"]
    changed_bars = _perturb(bars, plan.test_mask(), seed=1)
    assert not changed_bars.equals(bars)
    changed = _candidate(changed_bars, tmp_path)
    assert changed["plan"] == plan
    # the test window really was different: its signal changed
    assert not changed["test_signal"].equals(reference["test_signal"])
    assert changed["files"] == reference["files"]
    assert changed["best_cycle"] == reference["best_cycle"]
    assert changed["scores"] == reference["scores"]
    assert changed["selection_returns"] == reference["selection_returns"]


def test_changing_the_selection_window_does_change_the_selection(
    bars: pl.DataFrame, reference: dict[str, Any], tmp_path: Path
) -> None:
    """The control: the comparison above would notice a window that does feed the choice."""
    plan = reference["plan"]
    changed = _candidate(_perturb(bars, plan.selection_mask(), seed=2), tmp_path)
    assert changed["selection_returns"] != reference["selection_returns"]


@pytest.mark.parametrize(("action", "passes"), [("fail", False), ("drop", True)])
def test_a_feed_change_session_fails_qc_or_is_dropped_by_config(action: str, passes: bool) -> None:
    config = RetrainConfig.model_validate(
        {"data": {"synthetic": {"sessions": 30}}, "qc": {"low_volume_sessions": action}}
    )
    bars = pipeline.load_market(config).bars
    day = pl.col("ts").dt.convert_time_zone("America/New_York").dt.date()
    days = bars.select(day.unique().sort()).to_series()
    bars = bars.with_columns(
        pl.when(day == days[18]).then(pl.col("volume") * 0.02).otherwise(pl.col("volume")).alias("volume")
    )
    prepared = pipeline.prepare_bars(bars, config)
    report = pipeline.quality_check(prepared, config)
    assert report.passed is passes, report.failures
    if passes:
        assert prepared.repairs["low_volume_sessions_dropped"] == 2 * 390
        assert prepared.dropped_sessions == (days[18],)
    else:
        assert any("session_volume" in line and str(days[18]) in line for line in report.failures)
