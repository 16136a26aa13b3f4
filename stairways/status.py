"""Where production stands, in one look: ``stairways status`` (and ``--json``).

The registry's ``champion`` and ``previous-champion`` (version, gate verdict and reason, promotion state,
when registered, the run that trained it), the last nights of the nightly experiment (start, MLflow status,
QC and gate verdicts, the gate's reason, the candidate's test-window return, what the registry did, a link to
the run), and the nights still RUNNING after ``tracking.max_night_hours`` (stuck: a killed process, a hung
task). The next scheduled night comes from the caller (the schedule lives with the deployments, in ``ops``).
Read-only: nothing in the registry or the tracking store changes.
"""

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from stairways import tracking
from stairways.config import RetrainConfig
from stairways.promotion import ABSENT_CODES, STATE_TAG, alias_version
from stairways.registry import REASON_TAG, VERDICT_TAG

__all__ = ["NightStatus", "Status", "VersionStatus", "read_status", "status_text"]

RETURN_METRIC = "validation.held_out/mixed.total_return_pct"
"""The candidate's compounded return on the test window's sessions (percent)."""


@dataclass(frozen=True)
class VersionStatus:
    """A registered version an alias names."""

    alias: str
    version: str
    verdict: str
    reason: str
    promotion: str
    registered: str
    run_id: str


@dataclass(frozen=True)
class NightStatus:
    """One night of the nightly experiment."""

    run_id: str
    started: str
    status: str
    qc: str
    gate: str
    reason: str
    test_return_pct: float | None
    registry: str
    link: str
    flow_run_id: str


@dataclass(frozen=True)
class Status:
    """The registry's aliases, the last nights, the stuck ones and the next scheduled night."""

    model_name: str
    experiment_name: str
    tracking_uri: str
    champion: VersionStatus | None
    previous_champion: VersionStatus | None
    nights: list[NightStatus] = field(default_factory=list)
    stuck: list[NightStatus] = field(default_factory=list)
    next_night: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)


def _iso(milliseconds: int | None) -> str:
    if not milliseconds:
        return "-"
    return datetime.fromtimestamp(milliseconds / 1000, tz=UTC).isoformat(timespec="seconds")


def _version(client: MlflowClient, model_name: str, alias: str) -> VersionStatus | None:
    version = alias_version(client, model_name, alias)
    if version is None:
        return None
    tags = version.tags or {}
    return VersionStatus(
        alias=alias,
        version=str(version.version),
        verdict=tags.get(VERDICT_TAG, "-"),
        reason=tags.get(REASON_TAG, "-"),
        promotion=tags.get(STATE_TAG, "-"),
        registered=_iso(version.creation_timestamp),
        run_id=version.run_id or "-",
    )


def _gate_reason(client: MlflowClient, run: Run) -> str:
    """The gate decision's reason from ``gate/decision.json``, or why the night has none."""
    try:
        path = client.download_artifacts(run.info.run_id, "gate/decision.json")
    except (MlflowException, OSError):
        if run.data.tags.get("qc.verdict") == "fail":
            return "stopped: the data failed QC"
        return (
            "no gate decision (the night stopped before the gate)"
            if run.info.status != "RUNNING"
            else "running"
        )
    with open(path) as handle:
        return str(json.load(handle).get("reason", "-"))


def _night(client: MlflowClient, tracking_uri: str, run: Run) -> NightStatus:
    tags = run.data.tags
    value = run.data.metrics.get(RETURN_METRIC)
    return NightStatus(
        run_id=run.info.run_id,
        started=_iso(run.info.start_time),
        status=run.info.status,
        qc=tags.get("qc.verdict", "-"),
        gate=tags.get("gate.verdict", "-"),
        reason=_gate_reason(client, run),
        test_return_pct=None if value is None or math.isnan(value) else float(value),
        registry=tags.get("registry.promotion", "-"),
        link=tracking.run_url(tracking_uri, run.info.experiment_id, run.info.run_id),
        flow_run_id=tags.get("prefect.flow_run_id", "-"),
    )


def read_status(
    config: RetrainConfig, *, nights: int = 5, next_night: datetime | None = None, now: datetime | None = None
) -> Status:
    """The status of ``config``'s registered model and nightly experiment (nothing is written)."""
    uri = tracking.resolve_tracking_uri(config.tracking.tracking_uri)
    client = MlflowClient(tracking_uri=uri)
    model_name = config.registry.model_name
    try:
        champion = _version(client, model_name, "champion")
        previous = _version(client, model_name, "previous-champion")
    except MlflowException as error:
        if error.error_code not in ABSENT_CODES:
            raise
        champion = previous = None
    experiment = client.get_experiment_by_name(config.tracking.experiment_name)
    recent: list[NightStatus] = []
    stuck: list[NightStatus] = []
    if experiment is not None:
        runs = client.search_runs(
            [experiment.experiment_id],
            filter_string="tags.`mlflow.parentRunId` IS NULL",
            order_by=["attributes.start_time DESC"],
            max_results=max(nights, 1),
        )
        recent = [_night(client, uri, run) for run in runs[:nights]]
        moment = now or datetime.now(UTC)
        limit_ms = config.tracking.max_night_hours * 3_600_000
        running = client.search_runs(
            [experiment.experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=50
        )
        stuck = [
            _night(client, uri, run)
            for run in running
            if "mlflow.parentRunId" not in run.data.tags
            and moment.timestamp() * 1000 - (run.info.start_time or 0) > limit_ms
        ]
    return Status(
        model_name=model_name,
        experiment_name=config.tracking.experiment_name,
        tracking_uri=uri,
        champion=champion,
        previous_champion=previous,
        nights=recent,
        stuck=stuck,
        next_night=None if next_night is None else next_night.isoformat(timespec="minutes"),
    )


def _version_line(label: str, version: VersionStatus | None) -> str:
    if version is None:
        return f"{label}: none"
    return (
        f"{label}: version {version.version} (gate {version.verdict}, promotion {version.promotion}, registered "
        f"{version.registered}, run {version.run_id}): {version.reason}"
    )


def status_text(status: Status) -> str:
    """The status as a few lines a person reads in a terminal."""
    lines = [
        f"model '{status.model_name}' in {status.tracking_uri}",
        _version_line("champion", status.champion),
        _version_line("previous-champion", status.previous_champion),
        f"next scheduled night: {status.next_night or 'unknown'}",
        "",
        f"last {len(status.nights)} nights of experiment '{status.experiment_name}':",
    ]
    for night in status.nights:
        figure = "-" if night.test_return_pct is None else f"{night.test_return_pct:+.2f}%"
        lines.append(
            f"  {night.started}  {night.status:<9} qc {night.qc:<4} gate {night.gate:<6} test return {figure:>8}  "
            f"registry {night.registry}  {night.link}"
        )
        lines.append(f"      {night.reason}")
    if status.stuck:
        lines += ["", "STUCK (still RUNNING past tracking.max_night_hours):"]
        lines += [
            f"  {night.started}  run {night.run_id}  flow run {night.flow_run_id}  {night.link}"
            for night in status.stuck
        ]
    else:
        lines += ["", "no stuck nights"]
    return "\n".join(lines)
