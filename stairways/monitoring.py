"""Batched metrics to a Prometheus push gateway: one push per stage of a run, never one per step.

The nightly flow is a batch job, so Prometheus cannot scrape it; it pushes instead. When a gateway is
configured (``STAIRWAYS_PUSHGATEWAY=host:9091``, or a config value passed to :func:`resolve_pushgateway`),
training and validation call :func:`push_metrics` once each with their summary figures, for example
``{"training.steps": 48_000, "training.reward_mean": 0.12, "training.hold_rate": 0.4,
"validation.regime_score.volatile": 0.3, "gate.passed": 1.0}``.

Each push replaces the metric group ``job`` + ``labels`` (the grouping key) on the gateway, so the latest
run's figures stay visible until the next push; metric names get the ``stairways_`` prefix and
Prometheus-legal characters (``training.reward_mean`` becomes ``stairways_training_reward_mean``), and every
push adds ``stairways_last_push_timestamp_seconds`` for staleness alerts. Monitoring must never stop a
retrain: any failure (no gateway, a dead address, a timeout, a value that is not a number) is logged and
returns False.
"""

import logging
import os
import re
import time
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

__all__ = [
    "DEFAULT_PUSH_TIMEOUT_SECONDS",
    "LAST_PUSH_METRIC",
    "METRIC_PREFIX",
    "PUSHGATEWAY_ENVIRONMENT_VARIABLE",
    "metric_name",
    "push_metrics",
    "resolve_pushgateway",
]

_LOGGER = logging.getLogger("stairways.monitoring")

PUSHGATEWAY_ENVIRONMENT_VARIABLE = "STAIRWAYS_PUSHGATEWAY"
METRIC_PREFIX = "stairways"
LAST_PUSH_METRIC = f"{METRIC_PREFIX}_last_push_timestamp_seconds"
DEFAULT_PUSH_TIMEOUT_SECONDS = 5.0
_INVALID_NAME_CHARACTERS = re.compile(r"[^a-zA-Z0-9_]")


def resolve_pushgateway(configured: str | None = None) -> str | None:
    """``STAIRWAYS_PUSHGATEWAY`` wins, then ``configured``; None (monitoring off) when neither is set."""
    for candidate in (os.environ.get(PUSHGATEWAY_ENVIRONMENT_VARIABLE), configured):
        if candidate and candidate.strip():
            return candidate.strip()
    return None


def metric_name(name: str, *, prefix: str = METRIC_PREFIX) -> str:
    """A Prometheus-legal metric name: ``training.reward_mean`` -> ``stairways_training_reward_mean``."""
    cleaned = _INVALID_NAME_CHARACTERS.sub("_", name).strip("_")
    if not cleaned:
        msg = f"metric name {name!r} has no letters or digits"
        raise ValueError(msg)
    return f"{prefix}_{cleaned}" if prefix else cleaned


def _label_name(name: str) -> str:
    cleaned = _INVALID_NAME_CHARACTERS.sub("_", name)
    if not cleaned or cleaned[0].isdigit() or cleaned.startswith("__"):
        msg = f"label name {name!r} is not a legal Prometheus label name"
        raise ValueError(msg)
    return cleaned


def _registry(metrics: Mapping[str, float]) -> CollectorRegistry:
    registry = CollectorRegistry()
    names: dict[str, str] = {}
    for key, value in metrics.items():
        name = metric_name(key)
        if name in names:
            msg = f"metrics {names[name]!r} and {key!r} both map to the Prometheus name {name!r}"
            raise ValueError(msg)
        number = float(value)
        names[name] = key
        Gauge(name, f"stairways metric {key}", registry=registry).set(number)
    Gauge(LAST_PUSH_METRIC, "Unix time of the last push of this group", registry=registry).set(time.time())
    return registry


def push_metrics(
    gateway: str | None,
    *,
    job: str,
    metrics: Mapping[str, float],
    labels: Mapping[str, str],
    timeout: float = DEFAULT_PUSH_TIMEOUT_SECONDS,
) -> bool:
    """Push ``metrics`` as gauges to the gateway (``host:port`` or a URL) under ``job`` and ``labels``.

    One HTTP PUT replaces the group ``job`` + ``labels``. Returns True when the gateway accepted the push;
    False when no gateway is configured or anything failed (logged as a warning, never raised).
    """
    if not gateway or not gateway.strip():
        _LOGGER.debug("no push gateway configured: %d metrics of %s not pushed", len(metrics), job)
        return False
    try:
        registry = _registry(metrics)
        grouping_key = {_label_name(key): str(value) for key, value in labels.items()}
        push_to_gateway(
            gateway.strip(), job=job, registry=registry, grouping_key=grouping_key, timeout=timeout
        )
    except Exception as error:  # noqa: BLE001 - monitoring must never fail the run
        _LOGGER.warning(
            "pushing %d metrics of %s to %s failed: %s: %s",
            len(metrics),
            job,
            gateway,
            type(error).__name__,
            error,
        )
        return False
    _LOGGER.info("pushed %d metrics of %s to %s", len(metrics), job, gateway)
    return True
