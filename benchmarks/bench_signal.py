"""Benchmark: out-of-sample quality and cost of the causal walk-forward signal, per window, over seeds.

Run from the repository root (``make bench`` does): ``python benchmarks/bench_signal.py [--seeds S ...]``.
Writes ``bench-results/signal.json``. For the planted-edge, the default regimes and the martingale synthetic
markets (60 sessions), the night's windows (the last 10 sessions test, the 10 before them selection) and the
default :class:`market.signal.SignalConfig`, it prints per window the signal's pooled log loss against the
class-prior baseline, its directional accuracy and its correlation with the triple-barrier label, the share
of warm-up rows (neutral signal), and the wall time of :func:`market.signal.causal_signal`.

Every figure is out of sample: each row's model learned only labels that ended before the row's block.
Exit status 0 (a report, not a gate); the causal property itself is a test (``tests/market/test_signal.py``).
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import polars as pl  # noqa: E402
import torch  # noqa: E402

from market.feature_config import feature_names  # noqa: E402
from market.features import build_features  # noqa: E402
from market.labeling import label_bars  # noqa: E402
from market.signal import causal_signal  # noqa: E402
from market.synthetic import SyntheticMarketConfig, generate_market  # noqa: E402

__all__ = ["main"]

MARKETS = {
    "planted": SyntheticMarketConfig(
        sessions=60, mode="planted", planted_strength=0.9, planted_symbols="both"
    ),
    "regimes": SyntheticMarketConfig(sessions=60),
    "martingale": SyntheticMarketConfig(sessions=60, mode="martingale"),
}
WINDOW_STARTS_FROM_END = {"selection": 20, "test": 10}


def _window_starts(features: pl.DataFrame) -> dict[str, Any]:
    day = pl.col("ts").dt.convert_time_zone("America/New_York").dt.date()
    days = features.select(day.unique().sort()).to_series()
    return {
        name: features.filter(day == days[days.len() - back])["ts"].min()
        for name, back in WINDOW_STARTS_FROM_END.items()
    }


def measure(market: str, seed: int) -> dict[str, Any]:
    """One market and seed: per-window quality, warm-up share and wall time."""
    bars = generate_market(MARKETS[market], seed=seed).bars
    features, labels = build_features(bars), label_bars(bars)
    started = time.perf_counter()
    result = causal_signal(
        features,
        labels,
        feature_columns=feature_names(),
        primary_horizon=20,
        window_starts=_window_starts(features),
        seed=seed,
    )
    wall = time.perf_counter() - started
    windows = {}
    for name, report in result.cv_scores["windows"].items():
        windows[name] = {
            "samples": report["n"],
            "log_loss": report["model"]["log_loss"],
            "prior_log_loss": report["baseline"]["log_loss"],
            "directional_accuracy": report["directional_accuracy"],
            "correlation": report["signal_label_correlation"],
        }
    warmup = result.signal.filter(pl.col("source") == "warmup").height / result.signal.height
    return {"market": market, "seed": seed, "windows": windows, "warmup_share": warmup, "wall_seconds": wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3])
    parser.add_argument("--output", type=Path, default=ROOT / "bench-results" / "signal.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    runs = []
    for market in MARKETS:
        for seed in args.seeds:
            run = measure(market, seed)
            runs.append(run)
            cells = "; ".join(
                f"{name} log loss {w['log_loss']:.3f} vs prior {w['prior_log_loss']:.3f}, "
                f"dir.acc {w['directional_accuracy']:.3f}, corr {w['correlation']:+.3f}"
                for name, w in run["windows"].items()
                if w["log_loss"] is not None
            )
            print(
                f"{market:10s} seed {seed}: {cells}; warm-up {run['warmup_share']:.1%}, "
                f"{run['wall_seconds']:.1f} s",
                flush=True,
            )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"runs": runs, "python": platform.python_version()}, indent=2) + "\n")
    print(f"written: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
