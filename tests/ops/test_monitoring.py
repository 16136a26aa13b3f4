"""Batched metrics to a Prometheus push gateway: a recording HTTP server on loopback, a dead address."""

import socket
import time

import pytest

from stairways.monitoring import (
    LAST_PUSH_METRIC,
    metric_name,
    push_metrics,
    resolve_pushgateway,
)
from tests.support import RecordingGateway


def _dead_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"127.0.0.1:{port}"  # nothing listens once the probe is closed


def test_push_sends_one_put_with_every_metric_and_the_grouping_labels(gateway: RecordingGateway) -> None:
    pushed = push_metrics(
        gateway.address,
        job="stairways_training",
        metrics={"training.steps": 48_000, "training.reward_mean": 0.125, "gate.passed": True},
        labels={"deployment": "nightly-retrain", "flow_run": "jasper-agama"},
    )
    assert pushed is True
    assert len(gateway.pushes) == 1
    push = gateway.pushes[0]
    assert push.method == "PUT"
    assert push.path == "/metrics/job/stairways_training/deployment/nightly-retrain/flow_run/jasper-agama"
    lines = {
        line.split(" ")[0]: float(line.split(" ")[1]) for line in push.body.splitlines() if line[:1] != "#"
    }
    assert lines["stairways_training_steps"] == 48_000.0
    assert lines["stairways_training_reward_mean"] == 0.125
    assert lines["stairways_gate_passed"] == 1.0
    assert abs(lines[LAST_PUSH_METRIC] - time.time()) < 60


def test_a_dead_gateway_returns_false_without_raising() -> None:
    started = time.monotonic()
    assert push_metrics(_dead_address(), job="stairways_training", metrics={"steps": 1.0}, labels={}) is False
    assert time.monotonic() - started < 5


def test_no_gateway_configured_pushes_nothing(gateway: RecordingGateway) -> None:
    assert push_metrics(None, job="j", metrics={"steps": 1.0}, labels={}) is False
    assert push_metrics("  ", job="j", metrics={"steps": 1.0}, labels={}) is False
    assert gateway.pushes == []


def test_bad_values_are_reported_not_raised(gateway: RecordingGateway) -> None:
    not_a_number: dict = {"steps": "many"}
    assert push_metrics(gateway.address, job="j", metrics=not_a_number, labels={}) is False
    assert push_metrics(gateway.address, job="j", metrics={"a.b": 1.0, "a_b": 2.0}, labels={}) is False
    assert push_metrics(gateway.address, job="j", metrics={"steps": 1.0}, labels={"__reserved": "x"}) is False
    assert gateway.pushes == []


def test_metric_names_are_prometheus_legal() -> None:
    assert metric_name("training.reward_mean") == "stairways_training_reward_mean"
    assert metric_name("validation.regime_score[volatile]") == "stairways_validation_regime_score_volatile"
    with pytest.raises(ValueError, match="no letters"):
        metric_name("..")


def test_environment_variable_overrides_the_configured_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STAIRWAYS_PUSHGATEWAY", raising=False)
    assert resolve_pushgateway(None) is None
    assert resolve_pushgateway("config:9091") == "config:9091"
    monkeypatch.setenv("STAIRWAYS_PUSHGATEWAY", "env:9091")
    assert resolve_pushgateway("config:9091") == "env:9091"
