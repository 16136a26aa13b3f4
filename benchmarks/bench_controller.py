"""Benchmark: ns per AdaptiveRewardController.update call, and regime_scores on 1M bars.

Run from the repository root: ``python benchmarks/bench_controller.py``. Writes bench-results/controller.json.
"""

import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from controllers.regime import regime_scores  # noqa: E402
from controllers.reward import AdaptiveRewardController  # noqa: E402

__all__ = ["bench_regime_scores", "bench_update", "main"]

UPDATE_CALLS = 2_000_000
REPEATS = 5
REGIME_SESSIONS = 2_565  # x 390 bars per session = 1,000,350 bars


def bench_update(*, calls: int = UPDATE_CALLS, repeats: int = REPEATS) -> dict[str, float]:
    """Median and best ns per ``update`` over ``repeats`` runs of ``calls`` calls, net of the bare loop."""
    rng = np.random.default_rng(0)
    # A realistic mix: about 55% hold steps, a slowly moving regime score; inputs prepared outside the timing.
    held = (rng.random(calls) < 0.55).tolist()
    scores = np.sin(np.arange(calls) / 500.0).tolist()
    inputs = list(zip(held, scores, strict=True))
    totals, loop_only = [], []
    for _ in range(repeats):
        controller = AdaptiveRewardController()
        update = controller.update
        start = time.perf_counter()
        for held_step, score in inputs:
            update(held_step, score)
        totals.append(time.perf_counter() - start)
        start = time.perf_counter()
        for held_step, score in inputs:
            pass
        loop_only.append(time.perf_counter() - start)
    per_call = [seconds / calls * 1e9 for seconds in totals]
    loop = [seconds / calls * 1e9 for seconds in loop_only]
    return {
        "calls": calls,
        "repeats": repeats,
        "median_ns_per_update_with_loop": statistics.median(per_call),
        "best_ns_per_update_with_loop": min(per_call),
        "median_ns_loop_only": statistics.median(loop),
        "median_ns_per_update": statistics.median(per_call) - statistics.median(loop),
    }


def bench_regime_scores(*, sessions: int = REGIME_SESSIONS, repeats: int = REPEATS) -> dict[str, float]:
    """Median seconds of ``regime_scores`` on about 1M bars of two random-walk tickers."""
    bars_per_session = 390
    rng = np.random.default_rng(1)
    bars = sessions * bars_per_session
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.001, (bars, 2)), axis=0))
    session_index = np.repeat(np.arange(sessions), bars_per_session)
    regime_scores(close[:10_000], session_index=session_index[:10_000])  # warm the numpy paths
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        regime_scores(close, session_index=session_index)
        times.append(time.perf_counter() - start)
    return {"bars": bars, "repeats": repeats, "median_s": statistics.median(times), "best_s": min(times)}


def main() -> None:
    """Run both benchmarks, print a summary and write bench-results/controller.json."""
    update = bench_update()
    regime = bench_regime_scores()
    result = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "update": update,
        "regime_scores": regime,
    }
    print(
        f"update: {update['median_ns_per_update']:.0f} ns/call net of loop "
        f"({update['median_ns_per_update_with_loop']:.0f} ns with loop, "
        f"best {update['best_ns_per_update_with_loop']:.0f}; "
        f"median of {update['repeats']} x {update['calls']:,} calls)"
    )
    print(
        f"regime_scores: {regime['median_s']:.3f} s for {regime['bars']:,} bars "
        f"(best {regime['best_s']:.3f} s)"
    )
    out = ROOT / "bench-results" / "controller.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
