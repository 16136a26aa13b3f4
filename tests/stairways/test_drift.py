"""Tonight against the champion's training data, rebuilt from the champion's run: same data, no drift;
a calmer market, the volatility features drift."""

from pathlib import Path

import polars as pl
import pytest
from mlflow.tracking import MlflowClient

from stairways import pipeline, tracking
from stairways.config import RetrainConfig
from stairways.drift import SIGNAL_ARTIFACT, champion_reference, night_drift, signal_sample

CONFIG = RetrainConfig.model_validate(
    {
        "seed": 3,
        "data": {"synthetic": {"sessions": 12}},
        "window": {"selection_sessions": 2, "test_sessions": 2, "min_train_sessions": 3},
    }
)


def _night(config: RetrainConfig) -> tuple:
    prepared = pipeline.prepare_bars(pipeline.load_market(config).bars, config)
    features = pipeline.features_for(prepared, config)
    labels = pipeline.labels_for(prepared, config)
    return prepared, features, labels, pipeline.split_windows(features, config)


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, tuple]:
    folder = tmp_path_factory.mktemp("champion")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("nights", artifact_location=str(folder / "artifacts"))
    run = client.create_run(experiment)
    handle = tracking.RunHandle(tracking_uri=uri, run_id=run.info.run_id, experiment_id=experiment)
    night = _night(CONFIG)
    prepared, _, _, plan = night
    tracking.log_frame(handle, prepared.bars, "data/bars.parquet")
    tracking.set_tags(handle, {f"window.{key}": str(value) for key, value in plan.as_dict().items()})
    return uri, run.info.run_id, night


def test_the_champions_training_window_is_rebuilt_from_its_run(champion) -> None:
    uri, run_id, (prepared, features, _labels, plan) = champion
    reference = champion_reference(uri, run_id, bar_minutes=prepared.bar_minutes, config=CONFIG)
    start, end = plan.bounds("train")
    expected = features.filter(features["ts"].is_between(start, end))
    assert reference.features.equals(expected)
    assert reference.labels.get_column("event_ts").max() <= end


def test_the_same_data_does_not_drift(champion) -> None:
    uri, run_id, (prepared, features, labels, plan) = champion
    reference = champion_reference(uri, run_id, bar_minutes=prepared.bar_minutes, config=CONFIG)
    rows = night_drift(reference, features, labels, plan, CONFIG)
    assert rows and not [row.column for row in rows if row.drifted]
    assert all(row.psi == pytest.approx(0.0, abs=1e-9) for row in rows)
    assert any(":label_h" in row.column for row in rows)


def test_a_calmer_market_drifts_in_its_volatility_features(champion) -> None:
    uri, run_id, (prepared, *_rest) = champion
    reference = champion_reference(uri, run_id, bar_minutes=prepared.bar_minutes, config=CONFIG)
    calm = CONFIG.model_validate(
        {
            **CONFIG.model_dump(mode="json"),
            "data": {"synthetic": {"sessions": 12, "symbol_volatility_scale": [0.3, 0.3]}},
        }
    )
    _, features, labels, plan = _night(calm)
    rows = {row.column: row for row in night_drift(reference, features, labels, plan, CONFIG)}
    symbol = CONFIG.symbols[0]
    assert rows[f"{symbol}:volatility_20"].drifted


def test_a_run_without_windows_is_refused(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("nights"))
    with pytest.raises(ValueError, match="recorded no training window"):
        champion_reference(uri, run.info.run_id, bar_minutes=1, config=CONFIG)


def _signal(features, plan, *, scale: float = 1.0, shift: float = 0.0) -> pl.DataFrame:
    """A stand-in for a night's signal frame: walk-forward values plus warm-up rows that must be ignored."""
    rows = features.select("ts", "symbol").with_row_index("i")
    values = (pl.col("i").cast(pl.Float64) * 0.37).sin() * scale + shift
    return rows.with_columns(
        signal=values.clip(-1.0, 1.0),
        source=pl.when(pl.col("i") % 10 == 0).then(pl.lit("warmup")).otherwise(pl.lit("walk_forward")),
    ).drop("i")


def test_the_signal_is_compared_when_both_nights_recorded_it(champion) -> None:
    uri, champion_run, (prepared, features, labels, plan) = champion
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_run(champion_run).info.experiment_id
    run = client.create_run(experiment)
    handle = tracking.RunHandle(tracking_uri=uri, run_id=run.info.run_id, experiment_id=experiment)
    tracking.log_frame(handle, prepared.bars, "data/bars.parquet")
    tracking.set_tags(handle, {f"window.{key}": str(value) for key, value in plan.as_dict().items()})
    recorded = signal_sample(_signal(features, plan), plan)
    start, end = plan.bounds("train")
    in_window = features.filter(features["ts"].is_between(start, end)).height
    assert 0 < recorded.height < in_window  # warm-up rows and rows outside the training window are left out
    tracking.log_frame(handle, recorded, SIGNAL_ARTIFACT)

    reference = champion_reference(uri, run.info.run_id, bar_minutes=prepared.bar_minutes, config=CONFIG)
    assert reference.signal is not None and reference.signal.equals(recorded)
    symbol = CONFIG.symbols[0]
    same = {
        row.column: row for row in night_drift(reference, features, labels, plan, CONFIG, signal=recorded)
    }
    assert not same[f"{symbol}:signal"].drifted and same[f"{symbol}:signal"].psi == pytest.approx(
        0.0, abs=1e-9
    )
    shifted = signal_sample(_signal(features, plan, scale=0.2, shift=0.5), plan)
    moved = {
        row.column: row for row in night_drift(reference, features, labels, plan, CONFIG, signal=shifted)
    }
    assert moved[f"{symbol}:signal"].drifted
    # a champion that recorded no signal: the signal is simply not compared
    old = champion_reference(uri, champion_run, bar_minutes=prepared.bar_minutes, config=CONFIG)
    assert old.signal is None
    columns = [row.column for row in night_drift(old, features, labels, plan, CONFIG, signal=shifted)]
    assert not any(column.endswith(":signal") for column in columns)
