"""The walk-forward of the nightly recipe (``stairways.walk_forward``), on a tiny synthetic history.

One clean two-night run (module fixture) serves the fast tests; the look-ahead (poisoned future) and the
determinism checks each need a second run and are marked slow.
"""

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from pydantic import ValidationError

from core.errors import ConfigError
from market.calendar import EXCHANGE_TZ
from market.synthetic import generate_market
from stairways import pipeline, walk_forward
from stairways.config import RetrainConfig
from stairways.walk_forward import (
    NightRecord,
    WalkForwardConfig,
    WalkForwardReport,
    night_data_ends,
    run_walk_forward,
)
from tests.support import LENIENT_GATE
from training.checkpoints import read_meta

CONFIG = RetrainConfig.model_validate(
    {
        "seed": 3,
        "data": {"synthetic": {"sessions": 12}},
        "window": {"selection_sessions": 2, "test_sessions": 2, "min_train_sessions": 3},
        "signal": {"epochs": 10, "refit_every_sessions": 10},
        "scenarios": {"stress_episodes": 2, "stress_block_sessions": 2, "warmup_sessions": 1},
        "gate": LENIENT_GATE,
        "training": {
            "cycles": 1,
            "steps_per_cycle": 256,
            "progress_bar": False,
            "ppo": {"n_envs": 2, "n_steps": 64, "batch_size": 64},
        },
    }
)
WALK = WalkForwardConfig(nights=2, step_sessions=2, follow_sessions=2)
NIGHT_FIELDS = (
    "night", "data_end", "sessions", "windows", "cycles", "best_cycle", "training_stop",
    "gate_passed", "gate_reason", "promoted", "champion_before", "champion_after", "candidate",
)  # fmt: skip
"""What a night decides from its own history (the follow block and wall time come after it)."""


@dataclass(frozen=True)
class Run:
    report: WalkForwardReport
    output_dir: Path
    seen: list[NightRecord]
    """Records as ``on_night`` received them."""
    log: list[str]
    """The walk-forward logger's messages."""


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    handler = _Collect()
    logger = logging.getLogger(walk_forward.__name__)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    seen: list[NightRecord] = []
    output_dir = tmp_path_factory.mktemp("walk-forward")
    try:
        report = run_walk_forward(CONFIG, WALK, output_dir=output_dir, on_night=seen.append)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    yield Run(report, output_dir, seen, handler.messages)


def _sessions(bars: pl.DataFrame) -> list[date]:
    days = bars.select(pl.col("ts").dt.convert_time_zone(str(EXCHANGE_TZ)).dt.date().unique().sort())
    return days.to_series().to_list()


def _night_part(record: NightRecord) -> dict[str, Any]:
    values = record.as_dict()
    return {key: values[key] for key in NIGHT_FIELDS}


def _without_wall_time(report: WalkForwardReport) -> dict[str, Any]:
    values = report.as_dict()
    for night in values["nights"]:
        night.pop("wall_seconds")
    return values


def test_config_defaults_and_validation() -> None:
    assert WalkForwardConfig().follow_block_sessions == WalkForwardConfig().step_sessions == 5
    assert WalkForwardConfig(step_sessions=3, follow_sessions=7).follow_block_sessions == 7
    for bad in ({"nights": 0}, {"step_sessions": 0}, {"follow_sessions": 0}, {"night": 2}):
        with pytest.raises(ValidationError):
            WalkForwardConfig.model_validate(bad)
    with pytest.raises(ValidationError):
        WALK.nights = 3  # type: ignore[misc]  # frozen


def test_data_ends_leave_the_last_follow_block_and_are_step_apart() -> None:
    assert night_data_ends(12, WALK) == [7, 9]
    assert night_data_ends(30, WalkForwardConfig(nights=3, step_sessions=5)) == [14, 19, 24]
    assert night_data_ends(30, WalkForwardConfig(nights=1, step_sessions=5, follow_sessions=1)) == [28]


def test_too_short_history_is_refused_before_training(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_training(**_: object) -> None:
        pytest.fail("nothing may train when the history is too short")

    monkeypatch.setattr(walk_forward, "run_cycles", no_training)
    # 12 sessions; the first night needs 2 + 2 + 3 = 7, and 4 x 2 + 2 = 10 sessions follow it.
    with pytest.raises(ConfigError, match=r"needs at least 17 sessions of history, the data has 12") as error:
        run_walk_forward(CONFIG, WalkForwardConfig(nights=5, step_sessions=2), output_dir=Path("unused"))
    for needed in (
        "window.test_sessions",
        "window.selection_sessions",
        "window.min_train_sessions",
        "nights",
    ):
        assert needed in str(error.value)


def test_one_record_per_night_in_time_order_step_sessions_apart(clean: Run) -> None:
    records = clean.report.records
    sessions = _sessions(pipeline.prepare_bars(pipeline.load_market(CONFIG).bars, CONFIG).bars)
    assert clean.report.history_sessions == len(sessions) == 12
    assert [record.night for record in records] == [0, 1]
    ends = [sessions.index(record.data_end) for record in records]
    assert ends == night_data_ends(len(sessions), WALK) == [7, 9]
    for record, end in zip(records, ends, strict=True):
        assert record.sessions == end + 1
        # the night's windows end on its data end; the follow block is the next follow sessions
        test_end = date.fromisoformat(str(record.windows["test_end"])[:10])
        assert test_end == record.data_end
        assert (record.follow_start, record.follow_end) == (sessions[end + 1], sessions[end + 2])
        assert record.follow_buy_and_hold["sessions"] == 2.0
    assert records[-1].follow_end == sessions[-1]
    assert clean.seen == records  # on_night got every record, as it happened
    assert len(clean.log) == 2
    for message, record in zip(clean.log, records, strict=True):
        assert f"night {record.night + 1}/2 (data through {record.data_end})" in message


def test_champion_bookkeeping(clean: Run) -> None:
    champion = None
    for record in clean.report.records:
        assert record.champion_before == champion
        assert record.promoted == record.gate_passed
        if record.promoted:
            champion = record.night
            meta, problem = read_meta(clean.output_dir / f"night-{record.night}" / "champion")
            assert meta is not None, problem  # the promoted checkpoint survives, verifiable
        assert record.champion_after == champion
        if champion is None:
            assert record.follow is None and record.follow_session_returns == ()
        else:
            assert record.follow is not None
            assert record.follow["sessions"] == len(record.follow_session_returns) == 2
        assert set(record.candidate) == set(walk_forward.CANDIDATE_FIGURES)
    # the lenient gate promotes the first night, so a champion is followed and later compared with
    assert clean.report.records[0].promoted


def test_table_and_markdown_mention_every_night(clean: Run) -> None:
    table = clean.report.table()
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["night", "data"]
    for record in clean.report.records:
        row = next(line for line in lines[2:] if line.split()[:1] == [str(record.night)])
        assert record.data_end.isoformat() in row
        assert ("PASS" if record.gate_passed else "fail") in row
        assert f"night {record.night} gate: {record.gate_reason}" in table
        assert f"| {record.night} | {record.data_end.isoformat()} |" in clean.report.markdown()
    widths = {len(line) for line in lines[2:4]}
    assert len(widths) == 1  # fixed width


def test_write_produces_json_markdown_and_png(clean: Run, tmp_path: Path) -> None:
    paths = clean.report.write(tmp_path / "report")
    assert [path.name for path in paths] == ["walk_forward.json", "walk_forward.md", "walk_forward.png"]
    written = json.loads(paths[0].read_text())
    assert written == json.loads(json.dumps(clean.report.as_dict()))
    assert [night["night"] for night in written["nights"]] == [0, 1]
    assert written["summary"]["nights"] == 2
    assert "walk_forward.png" in paths[1].read_text()
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _poisoned_after(config: RetrainConfig, last: date) -> pipeline.MarketData:
    """The configured market through ``last``; after it, another market's bars rescaled to continue the
    closes (QC still passes, but every later bar differs)."""
    clean = pipeline.load_market(config)
    other = generate_market(config.data.synthetic, seed=987_654).bars
    session = pl.col("ts").dt.convert_time_zone(str(EXCHANGE_TZ)).dt.date()
    kept = clean.bars.filter(session <= last)
    scale = (
        kept.group_by("symbol")
        .agg(pl.col("close").sort_by("ts").last().alias("clean_close"))
        .join(
            other.filter(session <= last)
            .group_by("symbol")
            .agg(pl.col("close").sort_by("ts").last().alias("other_close")),
            on="symbol",
        )
        .select("symbol", (pl.col("clean_close") / pl.col("other_close")).alias("scale"))
    )
    later = (
        other.filter(session > last)
        .join(scale, on="symbol")
        .with_columns(pl.col(name) * pl.col("scale") for name in ("open", "high", "low", "close"))
        .drop("scale")
    )
    bars = pl.concat([kept, later.select(kept.columns)]).sort("ts", "symbol")
    return pipeline.MarketData(bars=bars, source=clean.source)


@pytest.mark.slow
def test_no_night_reads_a_bar_after_its_data_end(
    clean: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = clean.report.records[0]
    poisoned = _poisoned_after(CONFIG, first.data_end)
    original = pipeline.load_market(CONFIG).bars
    assert poisoned.bars.height == original.height and not poisoned.bars.equals(original)
    assert _sessions(poisoned.bars) == _sessions(original)  # the same sessions, other bars after night 0
    monkeypatch.setattr(pipeline, "load_market", lambda config: poisoned)
    report = run_walk_forward(CONFIG, WALK, output_dir=tmp_path)
    again = report.records[0]
    assert _night_part(again) == _night_part(first)
    # the poison is real: the follow block after night 0 (and night 1's history) saw other bars
    assert again.follow_buy_and_hold != first.follow_buy_and_hold


@pytest.mark.slow
def test_same_config_and_seed_give_the_same_records(clean: Run, tmp_path: Path) -> None:
    report = run_walk_forward(CONFIG, WALK, output_dir=tmp_path)
    assert _without_wall_time(report) == _without_wall_time(clean.report)
