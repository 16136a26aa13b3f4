"""tasks/training.py: where a flow run's scratch files go."""

from pathlib import Path

import pytest

from tasks.training import STATE_ENV, WORK_ROOT, work_root


def test_scratch_files_follow_the_state_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STATE_ENV, raising=False)
    assert work_root() == WORK_ROOT
    monkeypatch.setenv(STATE_ENV, str(tmp_path / "state"))
    assert work_root() == tmp_path / "state" / "runs"
