"""`stairways tune`, `ablate` and `walk-forward`: bad arguments and settings are one line naming what is wrong."""

from pathlib import Path

import pytest

from ops.cli import main


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["tune", "--workers", "0"], "--workers must be at least 1, got 0"),
        (["ablate", "--workers", "-1"], "--workers must be at least 1, got -1"),
        (["walk-forward", "--nights", "0"], "invalid walk-forward settings: --nights"),
        (["tune", "--tune-config", "absent.yaml"], "tuning config not found: absent.yaml"),
        (["tune", "--trials", "0"], "invalid tuning config: trials"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    arguments: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(arguments) == 1
    error = capsys.readouterr().err.strip()
    assert message in error
    assert len(error.splitlines()) == 1 and "Traceback" not in error
