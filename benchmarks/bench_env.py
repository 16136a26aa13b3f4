"""Raw step rate of the trading env, side by side with two open-source trading envs on the same bars.

Run from the repository root (``make bench`` does): ``python benchmarks/bench_env.py [--steps N] [--runs R]``.
It writes ``bench-results/env.json`` and prints a table.

Setup: 100,000 synthetic one-minute bars for two tickers (a seeded numpy random walk, 390-bar sessions),
one env, pre-generated random actions, ``--steps`` steps per run (default 1,000,000) with a reset at every
episode end, the median of ``--runs`` runs (default 3). Each env runs in its own subprocess (this script in
``--child`` mode), because importing ``gym_trading_env`` turns every warning of its process into an error.

- ``stairways``: :class:`envs.trading.DualTickerTradingEnv` with the adaptive reward controller (the headline
  figure), and once more without it. Twelve features per ticker (lagged one-bar returns), default costs,
  64-session episodes. The risk limits are loosened: with the defaults a random agent's losing streaks
  block most sessions early, and blocked steps skip the order path, which would flatter the figure.
- ``gym-anytrading``: ``StocksEnv`` (PyPI ``gym-anytrading``) on ticker 0's closes, window of 10 bars.
- ``gym-trading-env``: ``TradingEnv`` (PyPI ``gym-trading-env``) on ticker 0's bars with the same twelve
  features, positions (-1, 0, 1), 0.01% fees.

The peers are single-ticker envs; they are installed only for benchmarks. A peer whose import fails is
reported as unavailable (with the error) and the script still exits 0.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = ["main", "synthetic_bars"]

BARS = 100_000
SESSION_BARS = 390
FEATURES_PER_TICKER = 12
SEED = 20_240_102
ENVS: dict[str, str] = {
    "stairways": "stairways DualTickerTradingEnv + AdaptiveRewardController",
    "stairways-no-controller": "stairways DualTickerTradingEnv, no controller",
    "gym-anytrading": "gym-anytrading StocksEnv",
    "gym-trading-env": "gym-trading-env TradingEnv",
}
# Only the drawdown stop can end an episode early; random orders keep executing (~0.9 orders per step).
LOOSE_RISK_SETTINGS = {"daily_loss_limit": 0.5, "max_consecutive_losses": 1_000_000, "max_drawdown": 0.9}
PEER_DISTRIBUTIONS = {"gym-anytrading": "gym-anytrading", "gym-trading-env": "gym-trading-env"}


def synthetic_bars(bars: int = BARS, *, seed: int = SEED) -> dict[str, np.ndarray]:
    """Two correlated random-walk tickers: open/high/low/close/volume of shape (bars, 2), plus features."""
    rng = np.random.default_rng(seed)
    shocks = rng.normal(0.0, 1e-3, (bars, 2))
    shocks[:, 1] = 0.6 * shocks[:, 0] + 0.8 * shocks[:, 1]
    close = 100.0 * np.exp(np.cumsum(shocks, axis=0))
    open_ = np.empty_like(close)
    open_[0] = close[0]
    open_[1:] = close[:-1] * np.exp(rng.normal(0.0, 2e-4, (bars - 1, 2)))
    spread = np.abs(rng.normal(0.0, 5e-4, (bars, 2)))
    high = np.maximum(open_, close) * (1.0 + spread)
    low = np.minimum(open_, close) * (1.0 - spread)
    volume = rng.lognormal(11.0, 0.5, (bars, 2))
    returns = np.zeros_like(close)
    returns[1:] = np.log(close[1:] / close[:-1])
    # Feature k of a ticker is its one-bar return k bars ago: data at or before the bar only.
    lagged = [
        np.concatenate([np.zeros((lag, 2)), returns[: bars - lag]]) for lag in range(FEATURES_PER_TICKER)
    ]
    features = np.stack(lagged, axis=1)  # (bars, features, tickers)
    return {
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": volume,
        "features": features,
        "regime": np.clip(rng.normal(0.0, 0.5, bars), -1.0, 1.0),
    }


def _time_runs(
    step: Callable[[int], tuple], reset: Callable[[], Any], actions: list[int], runs: int
) -> list[float]:
    rates = []
    for _ in range(runs):
        reset()
        start = time.perf_counter()
        for action in actions:
            _, _, terminated, truncated, _ = step(action)
            if terminated or truncated:
                reset()
        rates.append(len(actions) / (time.perf_counter() - start))
    return rates


def _child_stairways(
    data: dict[str, np.ndarray], actions: np.ndarray, runs: int, *, controller: bool
) -> dict[str, Any]:
    from controllers.reward import AdaptiveRewardController
    from envs.market_arrays import MarketArrays
    from envs import DualTickerTradingEnv, RiskConfig, TradingEnvConfig

    bars = data["close"].shape[0]
    features = np.ascontiguousarray(
        np.concatenate([data["features"][:, :, 0], data["features"][:, :, 1]], axis=1), dtype=np.float32
    )
    market = MarketArrays(
        features=features,
        feature_names=tuple(
            f"{symbol}:return_lag_{lag}" for symbol in ("A", "B") for lag in range(FEATURES_PER_TICKER)
        ),
        open=np.ascontiguousarray(data["open"]),
        close=np.ascontiguousarray(data["close"]),
        volume=np.ascontiguousarray(data["volume"]),
        session_index=(np.arange(bars) // SESSION_BARS).astype(np.int64),
        timestamps=np.datetime64("2024-01-02T14:30", "ns") + np.arange(bars) * np.timedelta64(60, "s"),
        regime_score=data["regime"].astype(np.float32),
        symbols=("A", "B"),
    )
    env = DualTickerTradingEnv(
        market,
        config=TradingEnvConfig(sessions_per_episode=64, risk=RiskConfig(**LOOSE_RISK_SETTINGS)),
        controller=AdaptiveRewardController() if controller else None,
    )
    env.reset(seed=0)
    episodes = 0

    def reset() -> None:
        nonlocal episodes
        episodes += 1
        env.reset()

    rates = _time_runs(env.step, reset, actions.tolist(), runs)
    # Untimed: how often the order path ran (orders that filled per step) on the same actions.
    env.reset(seed=0)
    orders = 0
    for action in actions[:200_000].tolist():
        _, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            orders += info["agent_orders"]
            env.reset()
    return {
        "rates": rates,
        "episodes": episodes - runs,
        "steps_per_episode": runs * len(actions) / max(episodes - runs, 1),
        "agent_orders_per_step_first_200k": orders / min(len(actions), 200_000),
        "risk": LOOSE_RISK_SETTINGS,
        "observation_shape": list(env.observation_space.shape or ()),
    }


def _child_anytrading(data: dict[str, np.ndarray], actions: np.ndarray, runs: int) -> dict[str, Any]:
    import pandas as pd
    from gym_anytrading.envs import StocksEnv

    frame = pd.DataFrame({"Close": data["close"][:, 0]})
    window = 10
    env = StocksEnv(df=frame, window_size=window, frame_bound=(window, len(frame)))
    env.reset(seed=0)
    rates = _time_runs(env.step, env.reset, (actions % 2).tolist(), runs)
    return {"rates": rates, "observation_shape": list(env.observation_space.shape or ())}


def _child_trading_env(data: dict[str, np.ndarray], actions: np.ndarray, runs: int) -> dict[str, Any]:
    import pandas as pd
    from gym_trading_env.environments import TradingEnv

    bars = data["close"].shape[0]
    columns = {name: data[name][:, 0] for name in ("open", "high", "low", "close", "volume")}
    columns |= {
        f"feature_return_lag_{lag}": data["features"][:, lag, 0] for lag in range(FEATURES_PER_TICKER)
    }
    frame = pd.DataFrame(columns, index=pd.date_range("2024-01-02 14:30", periods=bars, freq="min"))
    env = TradingEnv(df=frame, positions=[-1, 0, 1], trading_fees=0.0001, initial_position=0, verbose=0)
    env.reset(seed=0)
    rates = _time_runs(env.step, env.reset, (actions % 3).tolist(), runs)
    return {"rates": rates, "observation_shape": list(env.observation_space.shape or ())}


def _run_child(name: str, data_path: Path, steps: int, runs: int) -> None:
    """Child mode: time one env and print one JSON line (an ``error`` key when it could not run)."""
    loaded = np.load(data_path)
    data = {key: loaded[key] for key in loaded.files}
    actions = np.random.default_rng(SEED + 1).integers(0, 9, steps)
    try:
        if name == "stairways":
            result = _child_stairways(data, actions, runs, controller=True)
        elif name == "stairways-no-controller":
            result = _child_stairways(data, actions, runs, controller=False)
        elif name == "gym-anytrading":
            result = _child_anytrading(data, actions, runs)
        elif name == "gym-trading-env":
            result = _child_trading_env(data, actions, runs)
        else:
            msg = f"unknown env {name!r}"
            raise ValueError(msg)
    except ImportError as error:
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
        return
    print(json.dumps(result))


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    """Time each env in its own subprocess, write ``bench-results/env.json``, print a table; exit 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000, help="steps per timed run")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per env (the median is reported)")
    parser.add_argument("--only", choices=sorted(ENVS), action="append", help="time only these envs")
    parser.add_argument("--output", type=Path, default=ROOT / "bench-results" / "env.json")
    parser.add_argument("--child", choices=sorted(ENVS), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _run_child(args.child, args.data, args.steps, args.runs)
        return 0

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-env-") as folder:
        data_path = Path(folder) / "bars.npz"
        np.savez(data_path, **synthetic_bars())  # type: ignore[arg-type]
        for name in args.only or list(ENVS):
            command = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--child",
                name,
                "--data",
                str(data_path),
                "--steps",
                str(args.steps),
                "--runs",
                str(args.runs),
            ]
            entry: dict[str, Any] = {"env": ENVS[name]}
            if name in PEER_DISTRIBUTIONS:
                entry["version"] = _version(PEER_DISTRIBUTIONS[name])
            try:
                completed = subprocess.run(command, capture_output=True, text=True, timeout=1_800, cwd=ROOT)
                lines = completed.stdout.strip().splitlines()
                payload = json.loads(lines[-1]) if completed.returncode == 0 and lines else None
                if payload is None:
                    tail = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
                    entry |= {"status": "failed", "error": " | ".join(tail)}
                elif "error" in payload:
                    entry |= {"status": "unavailable", "error": payload["error"]}
                else:
                    rates = payload.pop("rates")
                    entry |= {
                        "status": "ok",
                        "steps_per_second": statistics.median(rates),
                        "runs_steps_per_second": rates,
                        **payload,
                    }
            except subprocess.TimeoutExpired:
                entry |= {"status": "failed", "error": "timed out after 1800 s"}
            results[name] = entry

    report = {
        "benchmark": "raw env steps per second, random pre-generated actions, resets at episode ends",
        "bars": BARS,
        "session_bars": SESSION_BARS,
        "steps_per_run": args.steps,
        "runs": args.runs,
        "statistic": "median",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "gymnasium": _version("gymnasium"),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'env':60s} {'steps/s':>12s}")
    for entry in results.values():
        figure = (
            f"{entry['steps_per_second']:>12,.0f}"
            if entry["status"] == "ok"
            else f"  {entry['status']}: {entry['error']}"
        )
        print(f"{entry['env']:60s} {figure}")
    print(f"written: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
