"""The ``stairways`` command as a user runs it: exit codes and messages."""

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from market.synthetic import SyntheticMarketConfig, generate_market
from ops.cli import main


@pytest.fixture(scope="module")
def clean_exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("exports")
    bars = generate_market(SyntheticMarketConfig(sessions=28), seed=5).bars
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


def test_qc_applies_the_nights_own_requirements(
    clean_exports: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 0 means the night can use the data: both symbols, and enough sessions for its windows."""
    assert main(["qc", f"NVDA={clean_exports['NVDA']}"]) == 1
    assert "no bars at all for symbol(s) ['MSFT']" in capsys.readouterr().err
    short = tmp_path / "short.yaml"
    short.write_text("window:\n  test_sessions: 20\n  selection_sessions: 10\n")
    code = main(["qc", *(f"{s}={p}" for s, p in clean_exports.items()), "--config", str(short)])
    out = capsys.readouterr().out
    assert code == 1
    assert "the night cannot use these bars" in out and "too few" in out


def test_lowercase_tickers_are_the_same_symbols(
    clean_exports: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["qc", *(f"{s.lower()}={p}" for s, p in clean_exports.items())])
    assert code == 0, capsys.readouterr()


BAD_INPUTS = [
    (["qc", "NVDA"], "SYMBOL=PATH"),
    (["qc", "=x.csv"], "SYMBOL=PATH"),
    (["qc", "NVDA="], "SYMBOL=PATH"),
    (["qc", "NV DA=x.csv", "MSFT=y.csv"], "is not a ticker"),
    (["qc", "NVDA=a.csv", "nvda=b.csv"], "given twice"),
    (["qc", "NVDA=a.csv", "MSFT=b.csv", "--bar-minutes", "0"], "--bar-minutes must be"),
    (["run", "--config", "{folder}"], "is a directory"),
    (["run", "--config", "{binary}"], "is not text"),
    (["run", "--config", "{seed_true}"], "seed: a number is expected, got True"),
    (["run", "--config", "{absent}"], "config file not found"),
    (["rollback", "--reason", " "], "needs a reason"),
    (["serve", "up", "--host", "0.0.0.0", "--no-worker", "--no-deploy"], "host must be a loopback address"),
]


@pytest.mark.parametrize(("argv", "fragment"), BAD_INPUTS, ids=[" ".join(argv) for argv, _ in BAD_INPUTS])
def test_bad_input_gets_one_clean_line_and_exit_code_1(
    argv: list[str], fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = tmp_path / "config.bin"
    binary.write_bytes(b"\xff\xfe\x00\x01binary")
    seed_true = tmp_path / "seed.yaml"
    seed_true.write_text("seed: true\n")
    names = {"folder": tmp_path, "binary": binary, "seed_true": seed_true, "absent": tmp_path / "absent.yaml"}
    resolved = [item.format(**names) for item in argv]
    if resolved[0] == "rollback":
        resolved += ["--config", str(_store_config(tmp_path))]
    code = main(resolved)
    captured = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in captured.err + captured.out
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], captured.err


def _store_config(folder: Path) -> Path:
    config = folder / "store.yaml"
    config.write_text(f"tracking:\n  tracking_uri: sqlite:///{folder / 'mlflow.db'}\n")
    return config


@pytest.mark.parametrize("argument", ["NVDA", "=x.csv", "NVDA="])
def test_malformed_symbol_path_is_a_clear_error(argument: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["qc", argument]) == 1
    assert "SYMBOL=PATH" in capsys.readouterr().err


def test_missing_export_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["qc", f"NVDA={tmp_path / 'absent.csv'}", f"MSFT={tmp_path / 'absent2.csv'}"])
    assert code == 1
    assert "absent" in capsys.readouterr().err


def _bare_environment(folder: Path) -> dict[str, str]:
    """A user's shell without the Makefile: no Prefect API, a fresh Prefect home, a store of its own."""
    return {
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "HOME": str(folder),
        "PREFECT_HOME": str(folder / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
    }


@pytest.mark.slow
def test_stairways_run_uses_an_ephemeral_prefect_server(tmp_path: Path) -> None:
    """`stairways run` with no Prefect API configured starts Prefect's local server, as `make run` does."""
    config = tmp_path / "night.yaml"
    config.write_text(
        "data:\n  synthetic:\n    sessions: 8\nwindow:\n  selection_sessions: 2\n  test_sessions: 2\n  min_train_sessions: 3\n"
    )
    env = _bare_environment(tmp_path)
    completed = subprocess.run(
        [sys.executable, "-m", "ops.cli", "run", "--config", str(config)],
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


def test_a_storage_error_is_one_clean_line(
    clean_exports: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The report goes to a folder that does not exist: an OSError of the storage, said in one line."""
    target = tmp_path / "no-such-folder" / "qc.md"
    code = main(["qc", *(f"{s}={p}" for s, p in clean_exports.items()), "--report", str(target)])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    assert err.count("\n") == 1 and "storage error" in err and "no-such-folder" in err


@pytest.mark.slow
def test_a_killed_run_does_not_leave_its_temporary_prefect_server_behind(tmp_path: Path) -> None:
    """kill -9 of `stairways run` while Prefect's temporary server runs: the watchdog stops the server."""
    import os
    import signal
    import time

    from ops.watchdog import children

    config = tmp_path / "night.yaml"
    config.write_text("training:\n  steps_per_cycle: 200000\n  progress_bar: false\n")
    env = _bare_environment(tmp_path)
    cli = subprocess.Popen(
        [sys.executable, "-m", "ops.cli", "run", "--config", str(config)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        server = None
        deadline = time.monotonic() + 180
        while server is None and time.monotonic() < deadline and cli.poll() is None:
            server = next((pid for pid, command in children(cli.pid).items() if b"uvicorn" in command), None)
            time.sleep(0.5)
        assert server is not None, "the temporary Prefect server never started"
        time.sleep(2)  # let the watchdog see it
        os.kill(cli.pid, signal.SIGKILL)
        cli.wait(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and Path(f"/proc/{server}").exists():
            time.sleep(0.5)
        assert not Path(f"/proc/{server}").exists(), f"temporary server {server} outlived the killed CLI"
    finally:
        if cli.poll() is None:
            cli.kill()
