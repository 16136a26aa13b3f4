"""Fixtures shared by the registry tests.

``store`` is an empty SQLite MLflow store of the test's own (the promotion tests). The registry, integrity and
rollback tests share one trained agent (``checkpoints``) and one store (``shared_store``) for the whole session:
training and creating a store cost seconds; each test registers under a model name of its own (``tracking``).
"""

from pathlib import Path

import pytest

from tests.stairways.registry_support import Checkpoints, Tracking, build_checkpoints, new_tracking


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Checkpoints:
    return build_checkpoints(tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture(scope="session")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the session (creating one costs seconds); each test has its own model name."""
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


@pytest.fixture
def tracking(shared_store: str, tmp_path: Path) -> Tracking:
    return new_tracking(shared_store, tmp_path)
