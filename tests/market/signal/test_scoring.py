"""Tests for market/signal/scoring.py: the out-of-sample scores, calibration and meta reports agree."""

import json
from pathlib import Path

import polars as pl
import pytest

from market.signal import SignalResult, plot_calibration
from tests.market.signal.support import EXPECTED_BLOCK_STARTS, SYMBOLS
from tests.market.signal.support import run_plan as _plan
from tests.market.signal.support import symbol_samples as _samples

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_reports_are_consistent_and_json_ready(
    martingale: tuple[pl.DataFrame, pl.DataFrame], result: SignalResult, tmp_path: Path
) -> None:
    features, labels = martingale
    json.dumps({"cv": result.cv_scores, "calibration": result.calibration, "meta": result.meta_report})
    plans = _plan(features, labels)
    total = 0
    for symbol in SYMBOLS:
        scores = result.cv_scores["symbols"][symbol]
        blocks = scores["blocks"]
        assert [row["block"] for row in blocks] == list(range(len(EXPECTED_BLOCK_STARTS)))
        assert [row["start"] for row in blocks] == [start.isoformat() for start in EXPECTED_BLOCK_STARTS]
        assert sum(row["n_test"] for row in blocks) == scores["n_samples"]
        assert scores["n_samples"] == _samples(features, labels, symbol).height
        assert [row["n_train"] for row in blocks] == [train.shape[0] for train in plans[symbol].block_train]
        walk_forward = [row for row in blocks if row["source"] == "walk_forward"]
        for row in walk_forward:
            assert row["baseline"]["balanced_accuracy"] == pytest.approx(1 / 3)
        out_of_sample = scores["out_of_sample"]
        assert out_of_sample["n"] == sum(row["n_test"] for row in walk_forward)
        total += out_of_sample["n"]
        calibration = result.calibration[symbol]
        assert calibration["n_samples"] == out_of_sample["n"]
        for side in ("up", "down"):
            assert sum(row["count"] for row in calibration[side]["bins"]) == out_of_sample["n"]
            assert 0.0 <= calibration[side]["brier"] <= 1.0
        # Meta-labels: side = sign of the walk-forward signal (0 skipped), 1 when the label equals the side.
        # Block 1 is the first with a model, so its samples have no earlier walk-forward samples to train a
        # meta filter: the meta-scored samples are the signed ones from block 2 on.
        sided = (
            _samples(features, labels, symbol)
            .join(result.signal.filter(pl.col("symbol") == symbol), on="ts", how="left")
            .filter((pl.col("signal") != 0) & (pl.col("block") >= 2))
        )
        hits = (sided["label"].cast(pl.Float64) == sided["signal"].sign()).to_numpy()
        meta = result.meta_report[symbol]
        assert meta["threshold"] == 0.5
        assert meta["support"] == sided.height
        assert meta["base_rate"] == pytest.approx(hits.mean())
        assert meta["skipped"] is None
        for name in ("precision", "recall"):
            assert meta[name] is None or 0.0 <= meta[name] <= 1.0
    windows = result.cv_scores["windows"]
    assert sum(window["n"] for window in windows.values()) == total
    assert result.calibration["pooled"]["n_samples"] == total
    for window in windows.values():
        assert window["n"] > 0
        assert set(window) == set(result.cv_scores["symbols"]["NVDA"]["out_of_sample"])
    for key in ("log_loss", "accuracy", "balanced_accuracy"):
        assert result.cv_scores[key] == result.cv_scores["mean"]["model"][key]
        assert result.cv_scores[f"baseline_{key}"] == result.cv_scores["mean"]["baseline"][key]
    supports = [result.meta_report[symbol]["support"] for symbol in SYMBOLS]
    assert result.meta_report["support"] == result.meta_report["pooled"]["support"] == sum(supports)
    path = plot_calibration(result, tmp_path / "calibration.png")
    content = path.read_bytes()
    assert content.startswith(PNG_SIGNATURE)
    assert len(content) > 10_000
