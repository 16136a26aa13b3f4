"""Helpers shared by the registry tests: a tiny trained agent, tracking stores, versions, aliases and promotions."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import mlflow
import numpy as np
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from envs.market_arrays import MarketArrays
from stairways.promotion import STATE_TAG, PromotionOutcome, promote_verified
from stairways.registry import (
    RegisteredCandidate,
    current_champion,
    register_candidate,
)
from tests.training.support import synthetic_windows
from tests.validation.support import GOOD
from training.cycles import BASELINE_DIRECTORY, run_cycles
from training.ppo import PPOSettings, TrainingConfig
from validation.gate import decide
from validation.gate_criteria import GateCriteria
from validation.gate_decision import GateDecision

NAME = "agent"


def client_of(store: str) -> MlflowClient:
    return MlflowClient(tracking_uri=store, registry_uri=store)


def add_versions(store: str, count: int, *, verdict: str = "passed") -> list[str]:
    client = client_of(store)
    try:
        client.create_registered_model(NAME)
    except MlflowException:
        pass
    return [
        str(
            client.create_model_version(
                NAME, source=f"file:///nowhere/{index}", tags={"gate.verdict": verdict}
            ).version
        )
        for index in range(count)
    ]


def aliases(store: str) -> dict[str, str | None]:
    client = client_of(store)
    found: dict[str, str | None] = {"champion": None, "previous-champion": None}
    for alias in found:
        try:
            found[alias] = str(client.get_model_version_by_alias(NAME, alias).version)
        except MlflowException:
            pass
    return found


def state(store: str, version: str) -> str | None:
    return client_of(store).get_model_version(NAME, version).tags.get(STATE_TAG)


TINY = TrainingConfig(
    cycles=1,
    steps_per_cycle=256,
    progress_bar=False,
    ppo=PPOSettings(n_envs=2, n_steps=64, batch_size=64),
)




@dataclass(frozen=True)
class Checkpoints:
    """A trained checkpoint, the untrained baseline of the same run, and the held-out market."""

    trained: Path
    baseline: Path
    validation: MarketArrays
    observation_names: tuple[str, ...]


@dataclass(frozen=True)
class Tracking:
    """A tracking store, a registered-model name of the test's own, and one parent run whose artifacts stay
    under the test's folder."""

    uri: str
    run_id: str
    root: Path
    model_name: str

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)


def build_checkpoints(output: Path) -> Checkpoints:
    train, validation = synthetic_windows()
    outcome = run_cycles(train=train, selection=validation, config=TINY, seed=7, output_dir=output)
    return Checkpoints(
        trained=outcome.best_checkpoint,
        baseline=output / BASELINE_DIRECTORY,
        validation=validation,
        observation_names=(*train.feature_names, "position_0", "position_1"),
    )


def new_tracking(uri: str, root: Path) -> Tracking:
    """A fresh experiment (artifacts under ``root``), run and model name in the store at ``uri``."""
    client = MlflowClient(tracking_uri=uri)
    name = f"test-{uuid.uuid4().hex[:12]}"
    experiment = client.create_experiment(name, artifact_location=(root / "artifacts").as_uri())
    run = client.create_run(experiment, run_name="parent")
    return Tracking(uri=uri, run_id=run.info.run_id, root=root, model_name=f"agent-{name}")


def promote(*, tracking_uri: str, model_name: str, version: str, reason: str) -> PromotionOutcome:
    """Test setup: promote ``version`` through the real transaction, its replay taken as matching."""
    return promote_verified(
        tracking_uri=tracking_uri,
        model_name=model_name,
        version=version,
        expected_champion=current_champion(tracking_uri=tracking_uri, model_name=model_name),
        reason=reason,
        replay=lambda model_uri: ([], None),
    )


def passing_decision() -> GateDecision:
    criteria = GateCriteria(paired_baselines=())
    return decide({key: dict(GOOD) for key in criteria.scenario_criteria}, None, criteria)


def failing_decision() -> GateDecision:
    criteria = GateCriteria(paired_baselines=())
    candidate = {key: {**GOOD, "max_drawdown_pct": 3.5} for key in criteria.scenario_criteria}
    return decide(candidate, None, criteria)


def register(
    tracking: Tracking,
    checkpoints: Checkpoints,
    *,
    decision: GateDecision | None = None,
    checkpoint: Path | None = None,
) -> RegisteredCandidate:
    return register_candidate(
        tracking_uri=tracking.uri,
        model_name=tracking.model_name,
        run_id=tracking.run_id,
        checkpoint=checkpoint or checkpoints.trained,
        decision=decision or passing_decision(),
        data_digest="digest-of-the-data",
        observation_names=checkpoints.observation_names,
    )


def local_path(uri: str) -> Path:
    parsed = urlparse(uri)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(uri)


def aliases_by_version(tracking: Tracking) -> dict[str, list[str]]:
    client = tracking.client()
    numbers = [
        str(version.version) for version in client.search_model_versions(f"name='{tracking.model_name}'")
    ]
    # search results carry no aliases: read each version
    return {
        number: sorted(client.get_model_version(tracking.model_name, number).aliases)
        for number in sorted(numbers)
    }


@contextmanager
def global_tracking_uri(uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """MLflow's process-wide tracking URI set to ``uri`` for the block, restored afterwards."""
    previous = mlflow.get_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)


def observations(market: MarketArrays, rows: int = 64, *, seed: int = 0) -> np.ndarray:
    """Held-out feature rows with random positions in {-1, 0, 1}."""
    generator = np.random.default_rng(seed)
    batch = np.zeros((rows, market.features.shape[1] + 2), dtype=np.float32)
    batch[:, :-2] = market.features[:rows]
    batch[:, -2:] = generator.integers(-1, 2, size=(rows, 2))
    return batch
