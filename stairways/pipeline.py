"""Prefect-free stage functions of the nightly retrain flow, each a plain function over the config.

The ``tasks/`` adapters call these; tests call them directly without an orchestrator.
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from controllers.regime import regime_scores
from core.digest import frame_digest
from core.seeding import derive_seed
from envs.market_arrays import MarketArrays, market_arrays
from market.calendar import SESSION_MINUTES
from market.feature_config import feature_names, warmup_bars
from market.features import build_features
from market.labeling import label_bars
from market.loading import load_export
from market.normalize import NormalizedBars, normalize_bars
from market.signal import SignalResult, causal_signal
from market.synthetic import generate_market
from stairways.config import SIGNAL_FEATURE, RetrainConfig
from validation.qc import run_qc
from validation.qc_report import QCReport
from validation.windows import WindowPlan, plan_windows

__all__ = [
    "MarketData",
    "TrainingData",
    "training_data",
    "dataset_record",
    "feature_summary",
    "features_for",
    "labels_for",
    "signal_for",
    "split_windows",
    "load_market",
    "prepare_bars",
    "quality_check",
    "required_history_sessions",
]


@dataclass(frozen=True)
class MarketData:
    """Bars as loaded (not yet normalized), where they came from, and the true regimes when synthetic."""

    bars: pl.DataFrame
    source: str
    regimes: pl.DataFrame | None = None


def load_market(config: RetrainConfig) -> MarketData:
    """Generate the synthetic market or read the configured export files."""
    if config.data.source == "synthetic":
        market = generate_market(config.data.synthetic, seed=derive_seed(config.seed, "synthetic-market"))
        synthetic = config.data.synthetic
        source = f"synthetic:{synthetic.mode}:sessions={synthetic.sessions}:start={synthetic.start}"
        return MarketData(bars=market.bars, source=source, regimes=market.regimes)
    paths = {symbol: str(Path(path).expanduser()) for symbol, path in config.data.export_paths.items()}
    bars = load_export(paths, spec=config.data.export)
    source = "export:" + ",".join(f"{symbol}={path}" for symbol, path in sorted(paths.items()))
    return MarketData(bars=bars, source=source)


def prepare_bars(bars: pl.DataFrame, config: RetrainConfig) -> NormalizedBars:
    """Normalize to the canonical, session-filtered, aligned frame with every repair counted."""
    qc = config.qc
    return normalize_bars(
        bars,
        symbols=config.symbols,
        bar_minutes=config.data.export.bar_minutes,
        drop_partial_final_session=qc.drop_partial_final_session,
        drop_low_volume_below=qc.min_session_volume_ratio if qc.low_volume_sessions == "drop" else None,
        volume_median_sessions=qc.volume_median_sessions,
    )


def required_history_sessions(config: RetrainConfig, *, bar_minutes: int) -> int:
    """Sessions of history the configured windows need: the QC minimum or the feature warm-up plus one."""
    bars_per_session = max(1, SESSION_MINUTES // bar_minutes)
    warmup_sessions = math.ceil(warmup_bars(config.features) / bars_per_session)
    return max(config.qc.min_sessions, warmup_sessions + 1)


def quality_check(prepared: NormalizedBars, config: RetrainConfig) -> QCReport:
    """Run the versioned expectation suite on normalized bars."""
    return run_qc(
        prepared.bars,
        thresholds=config.qc,
        bar_minutes=prepared.bar_minutes,
        min_history_sessions=required_history_sessions(config, bar_minutes=prepared.bar_minutes),
        dropped_sessions=prepared.dropped_sessions,
    )


def dataset_record(prepared: NormalizedBars, *, source: str) -> dict[str, Any]:
    """What the run trained on: source, content digest, size, symbols, date range, bar size, repairs."""
    bars = prepared.bars
    first, last = (bars.get_column("ts").min(), bars.get_column("ts").max()) if bars.height else (None, None)
    return {
        "source": source,
        "digest": frame_digest(bars),
        "rows": bars.height,
        "symbols": sorted(bars.get_column("symbol").unique().to_list()),
        "start": str(first),
        "end": str(last),
        "sessions": bars.select(
            pl.col("ts").dt.convert_time_zone("America/New_York").dt.date().n_unique()
        ).item(),
        "bar_minutes": prepared.bar_minutes,
        "repairs": dict(prepared.repairs),
    }


def feature_summary(features: pl.DataFrame, config: RetrainConfig) -> dict[str, Any]:
    """Feature list with per-symbol summary statistics (mean, std, min, max, quantiles)."""
    names = feature_names(config.features)
    summary: dict[str, Any] = {"features": names, "rows": features.height, "by_symbol": {}}
    for (symbol,), frame in features.group_by("symbol", maintain_order=True):
        stats = frame.select(names).describe(percentiles=(0.05, 0.5, 0.95))
        table = {row["statistic"]: {name: row[name] for name in names} for row in stats.iter_rows(named=True)}
        summary["by_symbol"][str(symbol)] = table
    return summary


def features_for(prepared: NormalizedBars, config: RetrainConfig) -> pl.DataFrame:
    """Build the configured feature sets (warm-up rows dropped)."""
    return build_features(prepared.bars, config=config.features)


def labels_for(prepared: NormalizedBars, config: RetrainConfig) -> pl.DataFrame:
    """Triple-barrier labels at every configured horizon, per symbol."""
    return label_bars(prepared.bars, config=config.labels)


def split_windows(features: pl.DataFrame, config: RetrainConfig) -> WindowPlan:
    """Training | purge | selection | purge | test; each purge gap is the longest label horizon."""
    return plan_windows(
        features.get_column("ts"), config=config.window, purge_bars=max(config.labels.horizons)
    )


def signal_for(
    features: pl.DataFrame, labels: pl.DataFrame, plan: WindowPlan, config: RetrainConfig
) -> SignalResult:
    """Causal walk-forward signal: each row's model learned only labels that ended before the row.

    The selection and the test window each start a fresh walk-forward model, so every window's signal is
    what production would have had on its first bar.
    """
    return causal_signal(
        features,
        labels,
        feature_columns=feature_names(config.features),
        config=config.signal,
        primary_horizon=config.labels.primary_horizon,
        window_starts={"selection": plan.selection_start, "test": plan.test_start},
        seed=derive_seed(config.seed, "signal-model"),
    )


@dataclass(frozen=True)
class TrainingData:
    """The agent's observations and prices on the three windows.

    ``train`` is trained on; ``selection`` scores the cycles and picks the candidate; ``test`` is read only
    by the assessment, after the candidate is fixed (the training stage is never given it).
    """

    train: MarketArrays
    selection: MarketArrays
    test: MarketArrays


def _window_arrays(
    bars: pl.DataFrame, frame: pl.DataFrame, config: RetrainConfig, *, bootstrap: MarketArrays | None
) -> MarketArrays:
    arrays = market_arrays(bars, frame, feature_columns=config.observation_features, symbols=config.symbols)
    scores = regime_scores(
        arrays.close,
        session_index=arrays.session_index,
        config=config.regime,
        bootstrap_close=None if bootstrap is None else bootstrap.close,
        bootstrap_session_index=None if bootstrap is None else bootstrap.session_index,
    )
    return arrays.with_regime_score(scores)


def training_data(
    prepared: NormalizedBars,
    features: pl.DataFrame,
    signal: SignalResult,
    plan: WindowPlan,
    config: RetrainConfig,
) -> TrainingData:
    """Join features with the signal and cut the three windows; the purge gaps between them are left out.

    The regime scores of the selection window are bootstrapped from the training window's bars, those of the
    test window from the selection window's (each window's nearest past).
    """
    frame = features.join(
        signal.signal.select("ts", "symbol", pl.col("signal").alias(SIGNAL_FEATURE)), on=["ts", "symbol"]
    )
    train = _window_arrays(prepared.bars, frame.filter(plan.train_mask()), config, bootstrap=None)
    selection = _window_arrays(prepared.bars, frame.filter(plan.selection_mask()), config, bootstrap=train)
    test = _window_arrays(prepared.bars, frame.filter(plan.test_mask()), config, bootstrap=selection)
    return TrainingData(train=train, selection=selection, test=test)
