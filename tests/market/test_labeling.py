"""Tests for market/labeling.py: the labeling stage over the two-symbol bar frame, its report and plot."""

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from core.errors import ConfigError
from market.labeling import (
    LABEL_CLASSES,
    LABELING_COLUMNS,
    LabelConfig,
    label_bars,
    label_report,
    plot_label_report,
)
from market.synthetic import SyntheticMarketConfig, generate_market
from market.triple_barrier import BARRIER_NAMES, ewm_volatility, triple_barrier

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return generate_market(SyntheticMarketConfig(sessions=4, mode="martingale"), seed=11).bars


@pytest.fixture(scope="module")
def labels(bars: pl.DataFrame) -> pl.DataFrame:
    return label_bars(bars)


def test_one_row_per_bar_after_the_warmup_for_every_symbol_and_horizon(
    bars: pl.DataFrame, labels: pl.DataFrame
) -> None:
    config = LabelConfig()
    assert labels.columns == list(LABELING_COLUMNS)
    assert sorted(labels["horizon"].unique().to_list()) == sorted(config.horizons)
    assert config.primary_horizon in labels["horizon"].to_list()
    for (symbol,), symbol_bars in bars.group_by(["symbol"]):
        expected_events = symbol_bars["ts"].sort().slice(config.volatility_span)
        for horizon in config.horizons:
            block = labels.filter((pl.col("symbol") == symbol) & (pl.col("horizon") == horizon))
            assert block["event_ts"].to_list() == expected_events.to_list()
    assert labels.equals(labels.sort("symbol", "horizon", "event_ts"))


def test_each_block_equals_triple_barrier_with_the_documented_target(
    bars: pl.DataFrame, labels: pl.DataFrame
) -> None:
    config = LabelConfig()
    for symbol in ("NVDA", "MSFT"):
        frame = bars.filter(pl.col("symbol") == symbol).select("ts", "close")
        volatility = ewm_volatility(frame, span=config.volatility_span)
        for horizon in config.horizons:
            expected = triple_barrier(
                frame,
                events=frame["ts"].slice(config.volatility_span),
                target=volatility.select("ts", pl.col("volatility") * math.sqrt(horizon)),
                vertical_barrier=horizon,
            )
            block = labels.filter((pl.col("symbol") == symbol) & (pl.col("horizon") == horizon))
            assert block.drop("symbol", "holding_bars").equals(expected)


def test_target_scales_with_the_square_root_of_the_horizon_unless_switched_off(bars: pl.DataFrame) -> None:
    scaled = label_bars(bars, config=LabelConfig(horizons=(10, 40), primary_horizon=10))
    flat = label_bars(
        bars, config=LabelConfig(horizons=(10, 40), primary_horizon=10, scale_target_by_horizon=False)
    )
    short = scaled.filter(pl.col("horizon") == 10)["target"].to_numpy()
    long = scaled.filter(pl.col("horizon") == 40)["target"].to_numpy()
    np.testing.assert_allclose(long / short, 2.0, rtol=1e-12)
    np.testing.assert_array_equal(
        flat.filter(pl.col("horizon") == 10)["target"].to_numpy(),
        flat.filter(pl.col("horizon") == 40)["target"].to_numpy(),
    )
    flat_short = flat.filter(pl.col("horizon") == 10)["target"].to_numpy()
    np.testing.assert_allclose(flat_short, short / math.sqrt(10))


def test_holding_bars_count_bars_and_barriers_run_across_the_session_close(
    bars: pl.DataFrame, labels: pl.DataFrame
) -> None:
    resolved = labels.filter(pl.col("t1").is_not_null())
    assert resolved["holding_bars"].null_count() == 0
    assert (resolved["holding_bars"] >= 0).all()
    assert (resolved["holding_bars"] <= resolved["horizon"]).all()
    vertical = resolved.filter(pl.col("barrier") == "vertical")
    assert (vertical["holding_bars"] == vertical["horizon"]).all()
    nvda_ts = bars.filter(pl.col("symbol") == "NVDA")["ts"].to_list()
    row = resolved.filter(pl.col("symbol") == "NVDA").row(100, named=True)
    assert nvda_ts.index(row["t1"]) - nvda_ts.index(row["event_ts"]) == row["holding_bars"]
    # Late-session events exit in the next session: their wall-clock span includes the overnight break.
    crossing = resolved.filter(
        pl.col("t1").dt.convert_time_zone("America/New_York").dt.date()
        != pl.col("event_ts").dt.convert_time_zone("America/New_York").dt.date()
    )
    assert crossing.height > 0
    minutes = (crossing["t1"] - crossing["event_ts"]).dt.total_minutes()
    assert (minutes > 12 * 60).all()
    unresolved = labels.filter(pl.col("t1").is_null())
    assert (unresolved["barrier"] == "none").all()
    assert unresolved["holding_bars"].null_count() == unresolved.height


def test_report_shares_sum_to_one_and_counts_match(labels: pl.DataFrame) -> None:
    report = label_report(labels)
    json.dumps(report)  # JSON-serializable
    assert report["n_events"] == labels.height
    assert report["horizons"] == [10, 20, 50]
    assert report["symbols"] == ["MSFT", "NVDA"]
    for horizon in report["horizons"]:
        for symbol in report["symbols"]:
            stats = report["by_horizon"][str(horizon)][symbol]
            block = labels.filter((pl.col("horizon") == horizon) & (pl.col("symbol") == symbol))
            resolved = block.filter(pl.col("t1").is_not_null())
            assert stats["n_events"] == block.height
            assert stats["n_resolved"] == resolved.height
            assert sum(stats["class_balance"].values()) == pytest.approx(1.0)
            assert sum(stats["exit_shares"].values()) == pytest.approx(1.0)
            assert set(stats["class_balance"]) == {str(value) for value in LABEL_CLASSES}
            assert set(stats["exit_shares"]) == set(BARRIER_NAMES)
            assert stats["class_counts"]["1"] == int((resolved["label"] == 1).sum())
            assert stats["exit_counts"]["none"] == int((block["barrier"] == "none").sum())
            quantiles = list(stats["return"]["quantiles"].values())
            assert quantiles == sorted(quantiles)
            assert stats["return"]["mean"] == pytest.approx(resolved["ret"].mean())
            assert stats["holding_bars"]["quantiles"]["0.95"] <= horizon
            assert stats["holding_minutes"]["mean"] >= stats["holding_bars"]["mean"]


def test_report_rejects_a_frame_without_the_labeling_columns(labels: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="holding_bars"):
        label_report(labels.drop("holding_bars"))
    with pytest.raises(ValueError, match="empty"):
        label_report(labels.clear())


def test_plot_writes_a_png(labels: pl.DataFrame, tmp_path: Path) -> None:
    path = plot_label_report(labels, tmp_path / "labels" / "report.png")
    assert path == tmp_path / "labels" / "report.png"
    content = path.read_bytes()
    assert content.startswith(PNG_SIGNATURE)
    assert len(content) > 10_000


def test_horizon_longer_than_the_data_is_a_config_error(bars: pl.DataFrame) -> None:
    short = bars.filter(pl.col("ts") < pl.col("ts").min() + pl.duration(minutes=140))
    with pytest.raises(ConfigError, match=r"symbol MSFT: horizon 50 bars .* there are 140"):
        label_bars(short)
    # The same data is enough for a short horizon.
    assert label_bars(short, config=LabelConfig(horizons=(10,), primary_horizon=10)).height > 0


def test_min_return_above_every_target_is_a_config_error(bars: pl.DataFrame) -> None:
    with pytest.raises(ConfigError, match=r"every event was filtered out \(min_return=0.5"):
        label_bars(bars, config=LabelConfig(min_return=0.5))


def test_a_single_class_at_the_primary_horizon_is_a_config_error(bars: pl.DataFrame) -> None:
    config = LabelConfig(profit_take_mult=0.0, stop_loss_mult=0.0)
    with pytest.raises(ConfigError, match=r"only label class\(es\) \[0\] at the primary horizon 20"):
        label_bars(bars, config=config)
    # Labelling vertical exits by their sign brings the other classes back.
    labelled = label_bars(bars, config=config.model_copy(update={"label_vertical_by_sign": True}))
    assert set(labelled["label"].unique().to_list()) == {-1, 0, 1}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"horizons": (10, 20), "primary_horizon": 50}, "primary_horizon 50 is not one of horizons"),
        ({"horizons": ()}, "horizons is empty"),
        ({"horizons": (10, 10), "primary_horizon": 10}, "horizons must be distinct"),
        ({"horizons": (0, 10), "primary_horizon": 10}, "at least 1 bar"),
        ({"profit_take_mult": -1.0}, "greater than or equal to 0"),
        ({"volatility_window": 10}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_label_config_is_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LabelConfig(**overrides)  # type: ignore[arg-type]


def test_bars_without_a_close_are_refused(bars: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="close"):
        label_bars(bars.drop("close"))
