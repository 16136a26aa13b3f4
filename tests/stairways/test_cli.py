"""The ``stairways`` command as a user runs it: exit codes and messages."""

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from market.synthetic import SyntheticMarketConfig, generate_market
from stairways.cli import main


@pytest.fixture(scope="module")
def clean_exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("exports")
    bars = generate_market(SyntheticMarketConfig(sessions=6), seed=5).bars
    paths = {}
    for symbol in ("NVDA", "MSFT"):
        frame = bars.filter(pl.col("symbol") == symbol).drop("symbol")
        # A vendor-style export: naive New York timestamps, capitalised headers.
        frame = frame.with_columns(
            pl.col("ts").dt.convert_time_zone("America/New_York").dt.replace_time_zone(None)
        ).rename(
            {
                "ts": "Datetime",
                "open": "Open",
                "high": "High",
                "low": "Low",
                "close": "Close",
                "volume": "Volume",
            }
        )
        path = folder / f"{symbol.lower()}.csv"
        frame.write_csv(path)
        paths[symbol] = path
    return paths


def test_qc_passes_a_clean_export(
    clean_exports: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "qc.md"
    code = main(["qc", *(f"{s}={p}" for s, p in clean_exports.items()), "--report", str(report)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "QC PASSED" in out
    assert report.read_text().strip()


def test_qc_fails_a_broken_export(
    clean_exports: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = pl.read_csv(clean_exports["NVDA"])
    broken = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 100).then(-1.0).otherwise(pl.col("Close")).alias("Close")
    )
    path = tmp_path / "nvda.csv"
    broken.write_csv(path)
    code = main(["qc", f"NVDA={path}", f"MSFT={clean_exports['MSFT']}"])
    out = capsys.readouterr().out
    assert code == 1
    assert "QC FAILED" in out
    assert "close" in out.lower()


@pytest.mark.parametrize("argument", ["NVDA", "=x.csv", "NVDA="])
def test_malformed_symbol_path_is_a_clear_error(argument: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["qc", argument]) == 1
    assert "SYMBOL=PATH" in capsys.readouterr().err


def test_missing_export_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["qc", f"NVDA={tmp_path / 'absent.csv'}", f"MSFT={tmp_path / 'absent2.csv'}"])
    assert code == 1
    assert "absent" in capsys.readouterr().err


@pytest.mark.slow
def test_stairways_run_uses_an_ephemeral_prefect_server(tmp_path: Path) -> None:
    """`stairways run` with no Prefect API configured starts Prefect's local server, as `make run` does."""
    config = tmp_path / "night.yaml"
    config.write_text(
        "data:\n  synthetic:\n    sessions: 8\nwindow:\n  selection_sessions: 2\n  test_sessions: 2\n  min_train_sessions: 3\n"
    )
    env = {
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    completed = subprocess.run(
        [sys.executable, "-m", "stairways.cli", "run", "--config", str(config)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert '"mlflow_run_id"' in completed.stdout
    assert "Starting temporary server" in completed.stderr + completed.stdout
