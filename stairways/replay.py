"""Replay check: the champion loaded from the registry must reproduce the logged validation PnL.

After a promotion, a fresh process (:func:`replay_in_subprocess`, which runs ``python -m stairways.replay``)
loads the champion from the registry, verifying every model file against the version's integrity manifest,
itself checked against the version's ``integrity.manifest_sha256`` tag
(:func:`stairways.registry.load_registered_model`), and replays the ``mixed`` validation episodes saved by
:func:`save_episodes`. :func:`check_replay` compares the replayed PnL with the logged figures; on a mismatch
it raises :class:`~core.errors.ReplayMismatch` and the caller reverts the promotion.

**Episodes.** Each episode is one session (a :class:`~envs.market_arrays.MarketArrays` whose bars share
one ``session_index``), played from its first bar to its close in its own
:class:`~envs.trading.DualTickerTradingEnv` with the given env config (``sessions_per_episode`` forced to
1) and no reward controller: the controller shapes rewards only, never fills, risk stops or equity.
All episodes step in lockstep with one batched ``predict`` per step (the one evaluation loop,
:func:`envs.evaluation.evaluate_episodes`), with one torch thread, so the result does not depend on their
order.

**PnL** of an episode is its final equity minus ``initial_capital``, in dollars, after all costs.

**Tolerance.** Episode ``i`` matches when ``|replayed_i - expected_i| <= max(tolerance * |expected_i|,
capital_tolerance * capital)``: relative (default 0.1%) for a PnL of any size, with an absolute floor in
capital terms (default 1e-6 of capital, 10 cents on $100,000) so that a PnL at or near zero is not held to
a relative bound it cannot meet. A count difference or a non-finite value is a mismatch.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PyFuncModel

from core.errors import IntegrityError, ReplayMismatch
from core.spec import ACTION_COLUMN
from envs.evaluation import evaluate_episodes
from envs.market_arrays import MarketArrays
from envs.trading_config import TradingEnvConfig
from stairways.registry import load_registered_model
from training.ppo import torch_threads

__all__ = [
    "EPISODES_FORMAT",
    "check_replay",
    "load_episodes",
    "main",
    "replay_in_subprocess",
    "replay_pnl",
    "save_episodes",
]

EPISODES_FORMAT = 1
_FIELDS = ("features", "open", "close", "volume", "session_index", "timestamps", "regime_score")
_RESULT_MARKER = "STAIRWAYS_REPLAY "


# --------------------------------------------------------------------------------------------------------
# Episode files


def save_episodes(episodes: Sequence[MarketArrays], path: Path) -> Path:
    """Write the episodes to one ``.npz`` file (plain arrays and strings, no pickled objects)."""
    arrays: dict[str, np.ndarray] = {
        "format_version": np.asarray(EPISODES_FORMAT, dtype=np.int64),
        "count": np.asarray(len(episodes), dtype=np.int64),
    }
    for index, episode in enumerate(episodes):
        prefix = f"episode_{index}."
        for field in _FIELDS:
            arrays[prefix + field] = getattr(episode, field)
        arrays[prefix + "feature_names"] = np.asarray(episode.feature_names, dtype=np.str_)
        arrays[prefix + "symbols"] = np.asarray(episode.symbols, dtype=np.str_)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        np.savez_compressed(handle, **arrays)  # type: ignore[arg-type]
    return path


def load_episodes(path: Path) -> list[MarketArrays]:
    """Read episodes written by :func:`save_episodes` (no pickles allowed); ``ValueError`` if malformed."""
    try:
        with np.load(Path(path), allow_pickle=False) as data:
            version = int(data["format_version"])
            if version != EPISODES_FORMAT:
                msg = f"{path}: episode file format {version}, expected {EPISODES_FORMAT}"
                raise ValueError(msg)
            episodes = []
            for index in range(int(data["count"])):
                prefix = f"episode_{index}."
                fields = {field: np.ascontiguousarray(data[prefix + field]) for field in _FIELDS}
                symbols = tuple(str(symbol) for symbol in data[prefix + "symbols"])
                episodes.append(
                    MarketArrays(
                        **fields,
                        feature_names=tuple(str(name) for name in data[prefix + "feature_names"]),
                        symbols=(symbols[0], symbols[1]),
                    )
                )
    except (KeyError, IndexError, OSError) as error:
        msg = f"{path} is not a readable episode file: {error}"
        raise ValueError(msg) from error
    return episodes


# --------------------------------------------------------------------------------------------------------
# Replay


class _RegisteredPolicy:
    """The registered pyfunc as an evaluation policy: int64 actions of shape ``(n,)``, no reward controller."""

    def __init__(self, model: PyFuncModel) -> None:
        self._model = model

    def predict(self, observations: np.ndarray) -> np.ndarray:
        batch = np.asarray(observations, dtype=np.float32)
        answer = self._model.predict(batch)
        # The agent model answers named actions (a frame with an ``action`` column; see AgentPyfunc.predict).
        actions = answer[ACTION_COLUMN] if isinstance(answer, pd.DataFrame) else answer
        return np.asarray(actions).reshape(-1).astype(np.int64)


def _play(model: PyFuncModel, episodes: Sequence[MarketArrays], config: TradingEnvConfig) -> list[float]:
    for index, episode in enumerate(episodes):
        sessions = np.unique(episode.session_index)
        if sessions.size != 1:
            msg = f"episode {index} spans {sessions.size} sessions; a replay episode is one session"
            raise ValueError(msg)
    records = evaluate_episodes(_RegisteredPolicy(model), episodes, env_config=config)
    capital = float(config.initial_capital)
    return [float(record.equity[-1]) - capital for record in records]


def replay_pnl(
    model_uri: str,
    episodes: Sequence[MarketArrays],
    *,
    env_config: TradingEnvConfig,
    tracking_uri: str | None = None,
) -> list[float]:
    """The PnL (dollars) of each episode played by the registered model ``model_uri``, in order.

    ``model_uri`` is ``models:/<name>@<alias>`` or ``models:/<name>/<version>``; ``tracking_uri`` defaults
    to MLflow's current one. The model's files are verified against the version's integrity manifest before
    loading (``IntegrityError``). Raises ``ValueError`` for an episode that is not exactly one session.
    """
    if not episodes:
        msg = "no episodes to replay"
        raise ValueError(msg)
    uri = tracking_uri or mlflow.get_tracking_uri()
    with tempfile.TemporaryDirectory(prefix="stairways-replay-") as folder:
        model, _ = load_registered_model(model_uri, tracking_uri=uri, destination=Path(folder))
        with torch_threads(1):
            return _play(model, episodes, env_config)


def check_replay(
    expected: Sequence[float],
    replayed: Sequence[float],
    *,
    capital: float,
    tolerance: float = 0.001,
    capital_tolerance: float = 1e-6,
) -> None:
    """Raise ``ReplayMismatch`` unless every replayed PnL matches the expected one (module docstring)."""
    if not (capital > 0.0 and tolerance >= 0.0 and capital_tolerance >= 0.0):
        msg = f"capital must be > 0 and tolerances >= 0, got {capital}, {tolerance}, {capital_tolerance}"
        raise ValueError(msg)
    if len(expected) != len(replayed):
        msg = f"replayed {len(replayed)} episodes, but {len(expected)} PnL figures were logged"
        raise ReplayMismatch(msg)
    floor = capital_tolerance * capital
    problems = []
    for index, (logged_value, replayed_value) in enumerate(zip(expected, replayed, strict=True)):
        logged, again = float(logged_value), float(replayed_value)
        allowed = max(tolerance * abs(logged), floor)
        if not (math.isfinite(logged) and math.isfinite(again)) or abs(again - logged) > allowed:
            problems.append(
                f"episode {index}: logged {logged:.6f}, replayed {again:.6f} "
                f"(difference {again - logged:.6g}, allowed {allowed:.6g})"
            )
    if problems:
        shown = "; ".join(problems[:5])
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        msg = (
            f"the registry champion did not reproduce the logged PnL in {len(problems)} of {len(expected)} "
            f"episodes (tolerance {tolerance:.3%} relative, {floor:.6g} absolute): {shown}{more}"
        )
        raise ReplayMismatch(msg)


# --------------------------------------------------------------------------------------------------------
# Fresh process


def replay_in_subprocess(
    model_uri: str,
    episodes_file: Path,
    *,
    env_config: TradingEnvConfig,
    tracking_uri: str,
    timeout: float = 600.0,
) -> list[float]:
    """Run ``python -m stairways.replay`` with this interpreter and return its PnL list.

    The child gets ``MLFLOW_TRACKING_URI=tracking_uri`` and loads the model from the registry itself.
    Raises ``IntegrityError`` when the child refused a model file, ``ReplayMismatch`` when it failed,
    timed out or printed no result (with the tail of its output).
    """
    command = [
        sys.executable,
        "-m",
        "stairways.replay",
        "--model-uri",
        model_uri,
        "--episodes",
        str(Path(episodes_file).resolve()),
        "--env-config",
        env_config.model_dump_json(),
        "--tracking-uri",
        tracking_uri,
    ]
    environment = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=environment, check=False
        )
    except subprocess.TimeoutExpired as error:
        msg = f"the replay of {model_uri} did not finish within {timeout:.0f} s"
        raise ReplayMismatch(msg) from error
    lines = [line for line in completed.stdout.splitlines() if line.startswith(_RESULT_MARKER)]
    result = json.loads(lines[-1][len(_RESULT_MARKER) :]) if lines else None
    if completed.returncode != 0 or result is None or "pnl" not in result:
        tail = (completed.stderr or completed.stdout)[-2000:]
        if result is not None and result.get("error") == IntegrityError.__name__:
            msg = f"the replay process refused {model_uri}: {result.get('message')}"
            raise IntegrityError(msg)
        detail = result.get("message") if result else f"exit status {completed.returncode}"
        msg = f"the replay process for {model_uri} failed: {detail}\n--- its output ends with:\n{tail}"
        raise ReplayMismatch(msg)
    return [float(value) for value in result["pnl"]]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m stairways.replay``: print the replayed PnL as one JSON line (prefixed) and return 0.

    On failure, prints ``{"error": <type>, "message": ...}`` the same way and returns 1.
    """
    parser = argparse.ArgumentParser(prog="python -m stairways.replay", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-uri", required=True, help="models:/<name>@<alias> or models:/<name>/<version>"
    )
    parser.add_argument("--episodes", required=True, type=Path, help="episode file from save_episodes")
    parser.add_argument("--env-config", required=True, help="TradingEnvConfig as JSON")
    parser.add_argument("--tracking-uri", default=None, help="default: MLFLOW_TRACKING_URI")
    arguments = parser.parse_args(argv)
    tracking_uri = arguments.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    try:
        if not tracking_uri:
            msg = "no tracking URI: pass --tracking-uri or set MLFLOW_TRACKING_URI"
            raise ValueError(msg)
        mlflow.set_tracking_uri(tracking_uri)
        config = TradingEnvConfig.model_validate_json(arguments.env_config)
        episodes = load_episodes(arguments.episodes)
        pnl = replay_pnl(arguments.model_uri, episodes, env_config=config, tracking_uri=tracking_uri)
    except Exception as error:  # noqa: BLE001  # any failure goes to the parent, which raises a project error
        print(_RESULT_MARKER + json.dumps({"error": type(error).__name__, "message": str(error)}), flush=True)
        return 1
    print(_RESULT_MARKER + json.dumps({"model_uri": arguments.model_uri, "pnl": pnl}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
