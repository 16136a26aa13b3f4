import json
from pathlib import Path

import pytest

from tests.validation.support import REPO_ROOT
from validation.qc_suite import (
    DEFAULT_SUITE_PATH,
    SUITE_NAME,
    SUITE_VERSION,
    build_suite,
    export_suite,
    required_history_sessions,
)
from validation.qc_thresholds import QCThresholds


def test_required_history_covers_outlier_window() -> None:
    assert required_history_sessions(QCThresholds(), bar_minutes=1) == 5
    assert required_history_sessions(QCThresholds(), bar_minutes=5) == 7  # 390 returns at 77 per session, +1
    assert required_history_sessions(QCThresholds(), bar_minutes=1, min_history_sessions=20) == 20


def test_suite_is_versioned_and_reflects_thresholds() -> None:
    suite = build_suite(QCThresholds(outlier_z=8.0, max_outlier_share=0.02), bar_minutes=1)
    assert suite.name == SUITE_NAME
    assert suite.meta["version"] == SUITE_VERSION
    outliers = next(item for item in suite.expectations if item.meta["check"] == "outlier_returns")
    assert (outliers.min_value, outliers.max_value, outliers.mostly) == (-8.0, 8.0, pytest.approx(0.98))
    assert len({item.meta["check"] for item in suite.expectations}) == len(suite.expectations) == 42


def test_committed_suite_matches_code(tmp_path: Path) -> None:
    assert DEFAULT_SUITE_PATH == REPO_ROOT / "validation" / "suites" / "stairways_bars.json"
    generated = export_suite(tmp_path / "suite.json")
    assert DEFAULT_SUITE_PATH.read_text(encoding="utf-8") == generated.read_text(encoding="utf-8")
    document = json.loads(generated.read_text(encoding="utf-8"))
    assert document["name"] == SUITE_NAME and document["meta"]["version"] == SUITE_VERSION
