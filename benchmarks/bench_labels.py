"""Benchmark: triple-barrier labels on a 1,000,000-bar random walk, against RiskLabAI's AFML port.

Run from the repository root (``make bench`` does): ``python benchmarks/bench_labels.py``. Writes
``bench-results/labels.json``. RiskLabAI (PyPI ``RiskLabAI``) is optional: without it the script says so,
prints our figures and exits 0.

Convention bridge for the comparison. RiskLabAI's ``triple_barrier`` worker (snippet 3.3) tests *log* returns
against ``+-mult * width`` and its ``meta_labeling`` (snippet 3.5) labels every exit by the sign of the log
return at the first touch. Ours tests *simple* returns and labels vertical exits 0 by default. With a constant
width ``w`` the two are made identical by setting our multipliers to ``expm1(w) / w`` (profit take) and
``-expm1(-w) / w`` (stop loss), and by labelling vertical exits by sign with a zero threshold. Vertical
barriers are the same bar positions (``i + 60``; none past the data, searching to the end).

Exit status: 0, or 1 when the reference ran and its first-touch times or labels differ from ours.
"""

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numba
import numpy as np
import pandas as pd
import polars as pl

from market.triple_barrier import ewm_volatility, triple_barrier

__all__ = ["main"]

VERTICAL_BARS = 60
CONSTANT_TARGET = 0.005
STEP_VOLATILITY = 1e-3
SEED = 20240102


def random_walk(n_bars: int) -> pl.DataFrame:
    """One-minute bars of a geometric random walk (per-bar log-return std 0.1%)."""
    rng = np.random.default_rng(SEED)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, STEP_VOLATILITY, n_bars)))
    start = np.datetime64("2024-01-02T14:30:00", "ns").astype(np.int64)
    ticks = start + np.arange(n_bars, dtype=np.int64) * 60_000_000_000
    return pl.DataFrame(
        {"ts": pl.Series(ticks).cast(pl.Datetime("ns", "UTC")), "close": pl.Series(close, dtype=pl.Float64)}
    )


def median_seconds(call: Any, repeats: int) -> tuple[float, list[float], Any]:
    timings = []
    result = None
    for _ in range(repeats):
        started = time.perf_counter()
        result = call()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings), timings, result


def run_reference(bars: pl.DataFrame, n_events: int, repeats: int) -> dict[str, Any]:
    """Time RiskLabAI's first-touch worker and meta_labeling; return timings and its outputs."""
    from RiskLabAI.data.labeling.labeling import meta_labeling
    from RiskLabAI.data.labeling.labeling import triple_barrier as reference_triple_barrier

    # RiskLabAI reads `.values` of its indexes; a naive UTC index avoids pandas' time-zone deprecation path.
    index = pd.DatetimeIndex(bars["ts"].dt.replace_time_zone(None).to_numpy())
    close = pd.Series(bars["close"].to_numpy(), index=index)
    n_bars = close.shape[0]
    positions = np.arange(n_events)
    vertical = positions + VERTICAL_BARS
    end_time = pd.Series(pd.NaT, index=index[:n_events], dtype="datetime64[ns]")
    has_vertical = vertical < n_bars
    end_time.iloc[np.flatnonzero(has_vertical)] = index[vertical[has_vertical]]
    events = pd.DataFrame(
        {"End Time": end_time, "Base Width": CONSTANT_TARGET, "Side": 1.0}, index=index[:n_events]
    )
    profit_take_stop_loss = [1.0, 1.0]

    def first_touch() -> pd.DataFrame:
        return reference_triple_barrier(close, events, profit_take_stop_loss, list(events.index))

    first_touch_seconds, first_touch_timings, touches = median_seconds(first_touch, repeats)
    labelled_events = events.drop(columns="Side").assign(**{"End Time": touches["End Time"]})

    def labels() -> pd.DataFrame:
        return meta_labeling(labelled_events, close)

    labels_seconds, labels_timings, labelled = median_seconds(labels, repeats)
    return {
        "first_touch_seconds": first_touch_seconds,
        "first_touch_timings": first_touch_timings,
        "labels_seconds": labels_seconds,
        "labels_timings": labels_timings,
        "first_touch": touches["End Time"],
        "labels": labelled,
    }


def compare(ours: pl.DataFrame, reference: dict[str, Any]) -> dict[str, Any]:
    """Event-by-event comparison of first-touch times, labels and returns."""
    our_t1 = ours["t1"].dt.replace_time_zone(None).to_physical().to_numpy()
    our_t1_null = ours["t1"].is_null().to_numpy()
    reference_t1 = reference["first_touch"].to_numpy().astype("datetime64[ns]")
    reference_null = np.isnat(reference_t1)
    same_null = our_t1_null == reference_null
    both = ~our_t1_null & ~reference_null
    t1_mismatches = int((~same_null).sum() + (our_t1[both] != reference_t1[both].astype(np.int64)).sum())

    labelled = reference["labels"]
    reached = ours.filter(pl.col("t1").is_not_null())
    our_events = reached["event_ts"].dt.replace_time_zone(None).to_numpy()
    reference_events = labelled.index.to_numpy().astype("datetime64[ns]")
    events_match = our_events.shape == reference_events.shape and bool((our_events == reference_events).all())
    label_mismatches = (
        int((reached["label"].to_numpy() != labelled["Label"].to_numpy()).sum()) if events_match else -1
    )
    log_returns = np.log1p(reached["ret"].to_numpy())
    max_return_difference = (
        float(np.max(np.abs(log_returns - labelled["Return"].to_numpy())))
        if events_match and len(log_returns)
        else 0.0
    )
    return {
        "events_compared": int(ours.height),
        "events_with_first_touch": int(reached.height),
        "events_without_barrier": int(our_t1_null.sum()),
        "first_touch_mismatches": t1_mismatches,
        "labelled_events_match": events_match,
        "label_mismatches": label_mismatches,
        "max_abs_log_return_difference": max_return_difference,
        "identical": t1_mismatches == 0 and events_match and label_mismatches == 0,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000, help="number of bars (events at every bar)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats of our implementation")
    parser.add_argument("--reference-repeats", type=int, default=1, help="timed repeats of the reference")
    parser.add_argument(
        "--reference-events", type=int, default=None, help="compare on the first N events only (default: all)"
    )
    parser.add_argument("--output", type=Path, default=ROOT / "bench-results" / "labels.json")
    arguments = parser.parse_args(argv)

    bars = random_walk(arguments.bars)
    volatility = ewm_volatility(bars, span=100)
    print(
        f"triple barrier: {arguments.bars:,} bars, events at every bar, {VERTICAL_BARS}-bar vertical barrier"
    )

    compile_started = time.perf_counter()
    triple_barrier(bars.head(1000), target=CONSTANT_TARGET, vertical_barrier=VERTICAL_BARS)
    compile_seconds = time.perf_counter() - compile_started

    def ours_constant() -> pl.DataFrame:
        return triple_barrier(bars, target=CONSTANT_TARGET, vertical_barrier=VERTICAL_BARS)

    def ours_volatility() -> pl.DataFrame:
        return triple_barrier(bars, target=volatility, vertical_barrier=VERTICAL_BARS)

    ours_constant()  # warm-up
    constant_seconds, constant_timings, constant_out = median_seconds(ours_constant, arguments.repeats)
    volatility_seconds, volatility_timings, volatility_out = median_seconds(
        ours_volatility, arguments.repeats
    )
    print(f"  JIT compile + first small call: {compile_seconds:.2f} s (excluded)")
    print(
        f"  ours, constant target {CONSTANT_TARGET}: median {constant_seconds:.3f} s of {arguments.repeats}"
    )
    print(
        f"  ours, EWM-volatility target (span 100): median {volatility_seconds:.3f} s of {arguments.repeats}"
    )

    results: dict[str, Any] = {
        "benchmark": "triple_barrier",
        "n_bars": arguments.bars,
        "vertical_barrier_bars": VERTICAL_BARS,
        "step_volatility": STEP_VOLATILITY,
        "seed": SEED,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "versions": {
            "numpy": np.__version__,
            "numba": numba.__version__,
            "polars": pl.__version__,
            "pandas": pd.__version__,
        },
        "jit_compile_seconds": compile_seconds,
        "ours": {
            "constant_target": {
                "target": CONSTANT_TARGET,
                "events": constant_out.height,
                "median_seconds": constant_seconds,
                "timings": constant_timings,
                "barrier_counts": dict(sorted(constant_out["barrier"].value_counts().iter_rows())),
            },
            "ewm_volatility_target": {
                "events": volatility_out.height,
                "median_seconds": volatility_seconds,
                "timings": volatility_timings,
                "barrier_counts": dict(sorted(volatility_out["barrier"].value_counts().iter_rows())),
            },
            "requirement_seconds": 0.5,
            "meets_requirement": max(constant_seconds, volatility_seconds) < 0.5,
        },
    }
    exit_code = 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import RiskLabAI
    except ImportError as error:
        print(
            f"  reference unavailable: RiskLabAI cannot be imported ({error}); install it with `make bench`"
        )
        results["reference"] = {"available": False, "error": str(error)}
    else:
        n_events = arguments.reference_events or arguments.bars
        results["versions"]["RiskLabAI"] = getattr(RiskLabAI, "__version__", "unknown")
        target = CONSTANT_TARGET
        events = bars["ts"].head(n_events)

        def ours_bridged() -> pl.DataFrame:
            return triple_barrier(
                bars,
                events=None if n_events == arguments.bars else events,
                target=target,
                profit_take_mult=math.expm1(target) / target,
                stop_loss_mult=-math.expm1(-target) / target,
                vertical_barrier=VERTICAL_BARS,
                label_vertical_by_sign=True,
                min_return_threshold=0.0,
            )

        bridged_seconds, bridged_timings, bridged = median_seconds(ours_bridged, arguments.repeats)
        print(
            f"  reference: RiskLabAI {results['versions']['RiskLabAI']} on {n_events:,} events ...",
            flush=True,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = run_reference(bars, n_events, arguments.reference_repeats)
        comparison = compare(bridged, reference)
        reference_total = reference["first_touch_seconds"] + reference["labels_seconds"]
        ratio_first_touch = reference["first_touch_seconds"] / bridged_seconds
        ratio_total = reference_total / bridged_seconds
        print(f"  ours, same conventions as the reference: median {bridged_seconds:.3f} s")
        print(
            "  RiskLabAI first touch (snippet 3.3 worker, one process): "
            f"{reference['first_touch_seconds']:.2f} s; "
            f"meta_labeling: {reference['labels_seconds']:.2f} s"
        )
        print(
            f"  ratio reference/ours: first touch {ratio_first_touch:.1f}x, "
            f"first touch + labels {ratio_total:.1f}x"
        )
        print(
            f"  comparison on {comparison['events_compared']:,} events: first-touch mismatches "
            f"{comparison['first_touch_mismatches']}, label mismatches {comparison['label_mismatches']}, "
            f"max |log-return difference| {comparison['max_abs_log_return_difference']:.2e} -> "
            f"{'IDENTICAL' if comparison['identical'] else 'MISMATCH'}"
        )
        results["reference"] = {
            "available": True,
            "events": n_events,
            "ours_bridged_median_seconds": bridged_seconds,
            "ours_bridged_timings": bridged_timings,
            "first_touch_seconds": reference["first_touch_seconds"],
            "first_touch_timings": reference["first_touch_timings"],
            "labels_seconds": reference["labels_seconds"],
            "labels_timings": reference["labels_timings"],
            "ratio_first_touch": ratio_first_touch,
            "ratio_first_touch_and_labels": ratio_total,
            "comparison": comparison,
        }
        exit_code = 0 if comparison["identical"] else 1

    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"  wrote {arguments.output}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
