"""Tonight's data against the champion's training data: which features and labels drifted.

The champion's nightly run recorded its normalized bars (``data/bars.parquet``) and its windows
(``window.train_start`` / ``window.train_end`` tags). :func:`champion_reference` rebuilds that night's
features and labels from those bars with tonight's feature and label settings and keeps its training window;
:func:`night_drift` compares them with tonight's training window, per symbol and feature (``NVDA:rsi_14``)
and per label horizon (``NVDA:label_h30``), with :func:`validation.drift.drift_table`.

The **signal** (``NVDA:signal``) is a model's output, refitted every night, so it cannot be rebuilt from bars
without refitting the champion's signal models: each night records its training window's walk-forward signal
values (:data:`SIGNAL_ARTIFACT`, :func:`signal_sample`) and tonight's are compared with the champion's record
when it has one (a champion trained before signals were recorded has none, and the signal is then not compared).
"""

import tempfile
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from market.feature_config import feature_names
from market.normalize import NormalizedBars
from stairways.config import RetrainConfig
from stairways.pipeline import features_for, labels_for
from validation.drift import DriftRow, drift_table
from validation.windows import WindowPlan

__all__ = ["SIGNAL_ARTIFACT", "DriftCheck", "Reference", "champion_reference", "night_drift", "signal_sample"]

SIGNAL_ARTIFACT = "drift/signal.parquet"
"""A night's walk-forward signal values over its training window (``symbol``, ``signal``)."""


@dataclass(frozen=True)
class Reference:
    """The champion's training window, rebuilt: its features and labels, and the run they came from."""

    run_id: str
    features: pl.DataFrame
    labels: pl.DataFrame
    signal: pl.DataFrame | None = None
    """The champion night's :data:`SIGNAL_ARTIFACT`; None when it recorded none."""


@dataclass(frozen=True)
class DriftCheck:
    """A night's drift check: the rows (None: not computed) and a sentence on what was compared or why not."""

    rows: tuple[DriftRow, ...] | None
    note: str


def signal_sample(signal: pl.DataFrame, plan: WindowPlan) -> pl.DataFrame:
    """The walk-forward (out-of-sample, not warm-up) signal values of the training window: what a night
    records as :data:`SIGNAL_ARTIFACT` and what tonight's drift compares."""
    start, end = plan.bounds("train")
    return signal.filter(pl.col("ts").is_between(start, end) & (pl.col("source") == "walk_forward")).select(
        "symbol", "signal"
    )


def champion_reference(
    tracking_uri: str, run_id: str, *, bar_minutes: int, config: RetrainConfig
) -> Reference:
    """Rebuild the training window's features and labels of the night ``run_id`` (``ValueError`` if it
    recorded no bars or no windows)."""
    client = MlflowClient(tracking_uri=tracking_uri)
    tags = client.get_run(run_id).data.tags
    try:
        start = datetime.fromisoformat(tags["window.train_start"])
        end = datetime.fromisoformat(tags["window.train_end"])
    except KeyError as missing:
        msg = f"run {run_id} recorded no training window (tag {missing})"
        raise ValueError(msg) from None
    with tempfile.TemporaryDirectory(prefix="stairways-drift-") as folder:
        path = client.download_artifacts(run_id, "data/bars.parquet", folder)
        bars = pl.read_parquet(path)
        try:
            signal = pl.read_parquet(client.download_artifacts(run_id, SIGNAL_ARTIFACT, folder))
        except (MlflowException, OSError):
            signal = None
    prepared = NormalizedBars(bars=bars, bar_minutes=bar_minutes, repairs={})
    features = features_for(prepared, config).filter(pl.col("ts").is_between(start, end))
    labels = labels_for(prepared, config).filter(pl.col("event_ts").is_between(start, end))
    return Reference(run_id=run_id, features=features, labels=labels, signal=signal)


def _columns(
    features: pl.DataFrame, labels: pl.DataFrame, signal: pl.DataFrame | None, config: RetrainConfig
) -> dict[str, np.ndarray]:
    columns: dict[str, np.ndarray] = {}
    names = [name for name in feature_names(config.features) if name in features.columns]
    for (symbol,), part in features.partition_by("symbol", as_dict=True, maintain_order=True).items():
        for name in names:
            columns[f"{symbol}:{name}"] = part.get_column(name).to_numpy()
    for (symbol, horizon), part in labels.partition_by(
        ["symbol", "horizon"], as_dict=True, maintain_order=True
    ).items():
        columns[f"{symbol}:label_h{horizon}"] = (
            part.get_column("label").drop_nulls().cast(pl.Float64).to_numpy()
        )
    if signal is not None:
        for (symbol,), part in signal.partition_by("symbol", as_dict=True, maintain_order=True).items():
            columns[f"{symbol}:signal"] = part.get_column("signal").cast(pl.Float64).to_numpy()
    return columns


def night_drift(
    reference: Reference,
    features: pl.DataFrame,
    labels: pl.DataFrame,
    plan: WindowPlan,
    config: RetrainConfig,
    *,
    signal: pl.DataFrame | None = None,
) -> list[DriftRow]:
    """Drift of tonight's training window (features, labels and, when both nights recorded it, the signal:
    tonight's :func:`signal_sample` as ``signal``) against the champion's."""
    start, end = plan.bounds("train")
    tonight_features = features.filter(pl.col("ts").is_between(start, end))
    tonight_labels = labels.filter(pl.col("event_ts").is_between(start, end))
    compared = signal if reference.signal is not None else None
    return drift_table(
        _columns(
            reference.features, reference.labels, reference.signal if compared is not None else None, config
        ),
        _columns(tonight_features, tonight_labels, compared, config),
        config.drift,
    )
