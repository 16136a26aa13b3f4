"""A week of nights against one registry: the champion changes only for a stated reason.

Slow: each night is a real (small) flow run against the session's Prefect server and an MLflow SQLite store.
"""

import json
from pathlib import Path
from typing import Any

import mlflow
import polars as pl
import pytest
from mlflow.tracking import MlflowClient

import tasks.registry
import tasks.training
from benchmarks import bench_gate
from core.errors import DataQualityError, ReplayMismatch
from flows.retrain import nightly_retrain
from stairways import registry
from stairways.config import RetrainConfig
from tests.support import LENIENT_GATE, RecordingGateway

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]



def night_config(model_name: str, *, gate: dict[str, Any] | None = None, **overrides: Any) -> RetrainConfig:
    values: dict[str, Any] = {
        "seed": 11,
        "data": {"synthetic": {"sessions": 14}},
        "window": {"selection_sessions": 3, "test_sessions": 4, "min_train_sessions": 4},
        "training": {
            "cycles": 2,
            "steps_per_cycle": 1024,
            "progress_bar": False,
            "ppo": {"n_envs": 4, "n_steps": 128, "batch_size": 128},
        },
        "scenarios": {"stress_episodes": 8},
        "registry": {"model_name": model_name},
        "tracking": {"experiment_name": f"promotion-{model_name}"},
        "gate": gate or {},
    }
    values.update(overrides)
    return RetrainConfig.model_validate(values)


def champion(model_name: str) -> str | None:
    return registry.current_champion(tracking_uri=mlflow.get_tracking_uri(), model_name=model_name)


def test_the_champion_changes_only_for_a_stated_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gateway: RecordingGateway
) -> None:
    name = f"agent-{tmp_path.name}"
    client = MlflowClient()

    # Night 1: the replay from the registry disagrees with the logged PnL -> no alias ever moves.
    real_replay = tasks.registry.replay_in_subprocess

    def corrupted_replay(*args: Any, **kwargs: Any) -> list[float]:
        return [pnl + 1_000.0 for pnl in real_replay(*args, **kwargs)]

    monkeypatch.setattr(tasks.registry, "replay_in_subprocess", corrupted_replay)
    with pytest.raises(ReplayMismatch, match="was not promoted: the replay from the registry did not match"):
        nightly_retrain(night_config(name, gate=LENIENT_GATE))
    assert champion(name) is None
    assert client.get_model_version(name, "1").tags["promotion.state"] == "replay_failed"
    monkeypatch.setattr(tasks.registry, "replay_in_subprocess", real_replay)

    # Night 2: a passing candidate with no champion is promoted, and the fresh-process replay matches.
    # Training and validation push batched metrics (one push per cycle, one after the gate) to the gateway.
    second = nightly_retrain(
        night_config(name, gate=LENIENT_GATE, monitoring={"pushgateway": gateway.address})
    )
    jobs = [push.path.split("/job/")[1].split("/")[0] for push in gateway.pushes]
    assert jobs == ["stairways_training"] * len(second["cycles"]) + ["stairways_validation"]
    assert "stairways_gate_passed 1.0" in gateway.pushes[-1].body
    assert second["promoted"] is True
    assert second["champion"] == second["registered_version"] == "2"
    assert champion(name) == "2"
    replay = mlflow.artifacts.load_dict(f"runs:/{second['mlflow_run_id']}/gate/replay.json")
    assert len(replay["expected"]) == len(replay["replayed"]) > 0

    # Night 3: warm start from the champion; evaluated against it; the default gate rejects -> unchanged.
    third = nightly_retrain(night_config(name))
    assert third["warm_start"].startswith("champion version 2")
    assert third["promoted"] is False
    assert champion(name) == "2"
    metrics = mlflow.artifacts.load_dict(f"runs:/{third['mlflow_run_id']}/validation/metrics.json")
    assert metrics["champion"] is not None
    assert metrics["champion_note"] == "champion re-evaluated on the same scenarios"
    rejected = client.get_model_version(name, third["registered_version"])
    assert rejected.tags["gate.verdict"] == "failed"
    assert not rejected.aliases
    # Tonight's training data was compared with the champion's, rebuilt from night 2's run.
    assert client.get_run(third["mlflow_run_id"]).data.tags["drift.champion_run"] == second["mlflow_run_id"]
    drift = json.loads(mlflow.artifacts.load_text(f"runs:/{third['mlflow_run_id']}/drift/features.json"))
    assert {row["column"] for row in drift} >= {f"{symbol}:rsi_14" for symbol in RetrainConfig().symbols}

    # Night 4: tonight's observations drop a feature, so the champion cannot be evaluated: fail closed.
    fewer = {"observation_features": list(RetrainConfig().observation_features[1:])}
    incomparable = nightly_retrain(night_config(name, gate=LENIENT_GATE, **fewer))
    assert incomparable["gate"]["passed"] is False
    assert incomparable["gate"]["champion"] == "incomparable"
    assert "cannot be evaluated on tonight's observations" in incomparable["gate"]["reason"]
    assert "replace_incomparable_champion" in incomparable["gate"]["reason"]
    assert incomparable["promoted"] is False
    assert champion(name) == "2"

    # Night 5: the data fail QC -> the flow stops before features; nothing is registered.
    bars = pl.read_parquet(
        mlflow.artifacts.download_artifacts(
            f"runs:/{third['mlflow_run_id']}/data/bars.parquet", dst_path=str(tmp_path)
        )
    )
    paths = {}
    for symbol in ("NVDA", "MSFT"):
        frame = bars.filter(pl.col("symbol") == symbol).drop("symbol")
        if symbol == "NVDA":
            frame = frame.with_columns(
                pl.when(pl.int_range(pl.len()) == 500).then(-1.0).otherwise(pl.col("close")).alias("close")
            )
        paths[symbol] = str(tmp_path / f"{symbol}.parquet")
        frame.write_parquet(paths[symbol])
    with pytest.raises(DataQualityError):
        nightly_retrain(
            night_config(name, gate=LENIENT_GATE, data={"source": "export", "export_paths": paths})
        )
    assert champion(name) == "2"

    # Night 6: training dies -> unchanged.
    def dying(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("out of memory while training")

    real_run_cycle = tasks.training.run_cycle
    monkeypatch.setattr(tasks.training, "run_cycle", dying)
    with pytest.raises(RuntimeError, match="out of memory"):
        nightly_retrain(night_config(name, gate=LENIENT_GATE, seed=12))
    assert champion(name) == "2"
    versions = {str(version.version) for version in client.search_model_versions(f"name='{name}'")}
    assert versions == {"1", "2", third["registered_version"], incomparable["registered_version"]}

    monkeypatch.setattr(tasks.training, "run_cycle", real_run_cycle)

    # Night 7: the explicit switch replaces the incomparable champion, and the version says so.
    switch = {**LENIENT_GATE, "replace_incomparable_champion": True}
    replaced = nightly_retrain(night_config(name, gate=switch, **fewer))
    assert replaced["gate"]["champion"] == "incomparable, replaced"
    assert replaced["promoted"] is True
    assert champion(name) == replaced["registered_version"]
    tags = client.get_model_version(name, replaced["registered_version"]).tags
    assert tags["gate.champion"] == "incomparable, replaced"
    report = mlflow.artifacts.load_text(f"runs:/{replaced['mlflow_run_id']}/gate/report.md")
    assert "WARNING: an incomparable champion was replaced" in report


def real_budget_night(model_name: str, *, mode: str, seed: int) -> RetrainConfig:
    """The default-budget night of ``benchmarks/bench_gate.py`` (60 sessions, default windows and gate),
    registered under a model name of the test's own."""
    config = bench_gate.night_config(mode, seed)
    return config.model_copy(
        update={
            "registry": config.registry.model_copy(update={"model_name": model_name}),
            "tracking": config.tracking.model_copy(update={"experiment_name": f"gate-{model_name}"}),
        }
    )


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_null_market_promotes_nothing_at_the_real_budget(tmp_path: Path, seed: int) -> None:
    """On the martingale market nothing is predictable: a promotion would mean leakage or a broken gate.
    The signal rule, judged by the same gate on the same sessions, fails too."""
    name = f"null-{tmp_path.name}"
    summary = nightly_retrain(real_budget_night(name, mode="martingale", seed=seed))
    assert [cycle["cycle"] for cycle in summary["cycles"]][0] == 1
    assert summary["gate"]["passed"] is False, summary["gate"]["reason"]
    assert summary["promoted"] is False
    assert champion(name) is None
    version = MlflowClient().get_model_version(name, summary["registered_version"])
    assert version.tags["gate.verdict"] == "failed"
    run = MlflowClient().get_run(summary["mlflow_run_id"])
    assert run.data.tags["gate.signal_rule_verdict"] == "failed"
    assert "gate.deflated_sharpe" in run.data.metrics


PLANTED_SEEDS = (1, 2, 3, 4)


@pytest.fixture(scope="module")
def planted_nights(tmp_path_factory: pytest.TempPathFactory, prefect_server: None) -> list[dict[str, Any]]:
    """Nights on a market with a strong planted, learnable edge on both tickers (10-bar block momentum,
    strength 0.9), strong enough that the causal signal rule passes the default gate."""
    nights = []
    for seed in PLANTED_SEEDS:
        name = f"planted-{seed}-{tmp_path_factory.mktemp('planted').name}"
        summary = nightly_retrain(real_budget_night(name, mode="planted", seed=seed))
        metrics = mlflow.artifacts.load_dict(f"runs:/{summary['mlflow_run_id']}/validation/metrics.json")
        rule = mlflow.artifacts.load_dict(f"runs:/{summary['mlflow_run_id']}/gate/signal_rule_decision.json")
        nights.append({"summary": summary, "metrics": metrics, "rule": rule, "name": name})
    return nights


@pytest.mark.parametrize("scenario", ["held_out/mixed", "stress/mixed"])
def test_planted_edge_reaches_the_signal_rule_through_the_causal_pipeline(
    planted_nights: list[dict[str, Any]], scenario: str
) -> None:
    for night in planted_nights:
        baselines = night["metrics"]["baselines"]
        rule = baselines["signal_rule"][scenario]
        assert rule["total_return_pct"] > 1.0
        assert rule["sharpe"] > 0.6
        assert rule["total_return_pct"] > baselines["buy_and_hold"][scenario]["total_return_pct"]


def test_the_signal_rule_is_judged_by_the_same_gate_on_the_same_sessions(
    planted_nights: list[dict[str, Any]],
) -> None:
    for night in planted_nights:
        rule = night["rule"]
        scenarios = {item["scenario"] for item in rule["results"]}
        assert "held_out/mixed" in scenarios
        assert rule["statistics"]["paired"]["flat"]["sessions"] == 10
        assert night["summary"]["gate"]["paired"]["signal_rule"]["sessions"] == 10


def test_planted_edge_gets_the_agent_promoted_on_half_the_seeds(planted_nights: list[dict[str, Any]]) -> None:
    """Measured with ``benchmarks/bench_gate.py`` on these seeds: 2 of 4 promoted with the kickstart (the
    others fail on win rate alone, 0.59-0.62 against 0.65), 0 of 4 without it. The bound asserted: 2 of 4."""
    promoted = [night for night in planted_nights if night["summary"]["promoted"]]
    assert len(promoted) >= 2, [night["summary"]["gate"]["reason"] for night in planted_nights]
    for night in promoted:
        summary = night["summary"]
        assert summary["gate"]["passed"] is True
        assert champion(night["name"]) == summary["registered_version"]
        candidate = night["metrics"]["candidate"]["held_out/mixed"]
        rule = night["metrics"]["baselines"]["signal_rule"]["held_out/mixed"]
        assert candidate["total_return_pct"] > 1.0
        # The agent starts as a clone of the rule; PPO must not have wrecked it.
        assert candidate["total_return_pct"] > 0.5 * rule["total_return_pct"]
        assert summary["gate"]["paired"]["flat"]["lower"] > 0.0
