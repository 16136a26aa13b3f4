"""Fixtures shared by the registry tests: an empty SQLite MLflow store."""

from pathlib import Path

import pytest


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"
