"""Prefect-free stage functions of the nightly retrain flow, each a plain function over the config.

The ``tasks/`` adapters call these; tests call them directly without an orchestrator.
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from market.calendar import SESSION_MINUTES
from market.features import build_features, feature_names, warmup_bars
from market.loading import load_export
from market.normalize import NormalizedBars, normalize_bars
from market.synthetic import generate_market
from stairways.config import RetrainConfig
from stairways.digest import frame_digest
from stairways.seeding import derive_seed
from validation.qc import QCReport, run_qc

__all__ = [
    "MarketData",
    "dataset_record",
    "feature_summary",
    "features_for",
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
    return normalize_bars(bars, symbols=config.symbols, bar_minutes=config.data.export.bar_minutes)


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
        "sessions": bars.select(pl.col("ts").dt.convert_time_zone("America/New_York").dt.date().n_unique()).item(),
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

