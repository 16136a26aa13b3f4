"""Benchmark: microseconds per AdaptiveRewardController.observe call, and regime_scores on 1M bars.

The controller no longer runs per env step (the env only reads its two outputs); its control step runs once
per rollout, so its cost is per rollout. The greedy probe that feeds it is timed inside training
(``benchmarks/bench_training.py`` reports its share); whether it helps is ``bench_controller_nights.py``.

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

from controllers.behaviour import BehaviourMeasurement  # noqa: E402
from controllers.regime import regime_scores  # noqa: E402
from controllers.reward import AdaptiveRewardController  # noqa: E402

__all__ = ["bench_observe", "bench_regime_scores", "main"]

OBSERVE_CALLS = 100_000
REPEATS = 5
REGIME_SESSIONS = 2_565  # x 390 bars per session = 1,000,350 bars


def bench_observe(*, calls: int = OBSERVE_CALLS, repeats: int = REPEATS) -> dict[str, float]:
    """Median and best microseconds per ``observe`` (the controller's per-rollout control step)."""
    rng = np.random.default_rng(0)
    trades = rng.gamma(4.0, 5.0, calls).tolist()
    scores = np.sin(np.arange(calls) / 50.0).tolist()
    measurements = [
        BehaviourMeasurement(
            steps=2_334,
            orders=round(value * 6),
            idle_steps=2_334 - min(2_334, round(value * 6)),
            hold_actions=1_000,
            decisions_per_session=389.0,
        )
        for value in trades
    ]
    totals = []
    for _ in range(repeats):
        controller = AdaptiveRewardController()
        start = time.perf_counter()
        for index, measured in enumerate(measurements):
            controller.observe(measured, regime_score=scores[index], steps=index)
        totals.append(time.perf_counter() - start)
    per_call = [seconds / calls * 1e6 for seconds in totals]
    return {
        "calls": calls,
        "repeats": repeats,
        "median_us_per_observe": statistics.median(per_call),
        "best_us_per_observe": min(per_call),
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
    observe = bench_observe()
    regime = bench_regime_scores()
    result = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "observe": observe,
        "regime_scores": regime,
    }
    print(
        f"observe: {observe['median_us_per_observe']:.1f} us/call (best {observe['best_us_per_observe']:.1f}; "
        f"median of {observe['repeats']} x {observe['calls']:,} calls; once per 2,048-step rollout)"
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
