"""Calendar lookups: exchange-calendars (``market.calendar``) against the hand-written rules it replaced.

Run from the repository root: ``python benchmarks/bench_calendar.py`` (``make bench`` does). The "before"
side is ``tests/market/calendar_reference.py``, the former ``market.calendar`` kept unchanged as the tests'
reference, so both sides run in one process on the same machine. The library's one-time cost (import and
building the XNYS calendar over 2000-2100) is timed once, cold; every lookup is then timed as the median of
``RUNS`` runs after one warm-up. Figures go to stdout and to ``bench-results/calendar.json``; a ratio is
before / after, so above 1 means the library version is faster.
"""

import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
if str(REPOSITORY_ROOT) not in sys.path:
    sys.path.insert(0, str(REPOSITORY_ROOT))

from market import calendar as library
from tests.market import calendar_reference as reference

__all__ = ["main"]

RUNS = 7
LONG = (date(2012, 1, 3), date(2040, 12, 31))  # the span of benchmarks/bench_features.py
SHORT = (date(2026, 12, 4), date(2026, 12, 18))  # what ops.schedule.next_night asks for
PROBES = [date(2001, 1, 1) + timedelta(days=offset) for offset in range(0, 365 * 30, 11)]  # 996 dates


def _median_seconds(call: Callable[[], object]) -> float:
    call()
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _cases(module: Any) -> dict[str, Callable[[], object]]:
    long_days = reference.trading_days(*LONG)
    night_days = long_days[-60:]  # the synthetic market's default 60 sessions
    return {
        "trading_days 2012-2040": lambda: module.trading_days(*LONG),
        "trading_days two weeks": lambda: module.trading_days(*SHORT),
        "is_trading_day x996": lambda: [module.is_trading_day(day) for day in PROBES],
        "sessions 60 days": lambda: module.sessions(night_days),
        f"sessions {len(long_days)} days": lambda: module.sessions(long_days),
        "holidays + early_closes x30 years": lambda: [
            (module.holidays(year), module.early_closes(year)) for year in range(2001, 2031)
        ],
    }


def main() -> int:
    """Print and write the before/after figures; exit code 0."""
    started = time.perf_counter()
    library.calendar_span()  # first use: imports exchange-calendars and builds XNYS 2000-2100
    cold = time.perf_counter() - started
    before, after = _cases(reference), _cases(library)
    rows = []
    for name in before:
        old, new = _median_seconds(before[name]), _median_seconds(after[name])
        rows.append({"case": name, "before_s": old, "after_s": new, "ratio": old / new})
    print(f"first use of market.calendar (import + build XNYS 2000-2100, once per process): {cold:.2f} s")
    print(f"{'case':<36}{'before (rules)':>16}{'after (library)':>17}{'before/after':>14}")
    for row in rows:
        print(
            f"{row['case']:<36}{row['before_s'] * 1e3:>13.3f} ms{row['after_s'] * 1e3:>14.3f} ms"
            f"{row['ratio']:>13.1f}x"
        )
    output = REPOSITORY_ROOT / "bench-results" / "calendar.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    report = {"machine": platform.platform(), "runs": RUNS, "first_use_s": cold, "cases": rows}
    output.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
