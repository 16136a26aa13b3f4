"""The Prometheus alert rules (ops/prometheus/alerts.yml) against what the flow really pushes, and promtool's
verdict on them, on the Prometheus config and on the rules' unit tests (ops/prometheus/alerts_test.yml).

The promtool tests are slow-marked: they need the binary (`make promtool` installs it from Debian's
``prometheus`` package) and skip, saying why, without it.
"""

import ast
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from stairways.monitoring import LAST_PUSH_METRIC, metric_name

REPO = Path(__file__).resolve().parents[2]
FOLDER = REPO / "ops" / "prometheus"
RULES = FOLDER / "alerts.yml"
RULE_TESTS = FOLDER / "alerts_test.yml"
_METRIC = re.compile(r"\bstairways_[a-z0-9_]+")
_SELECTOR = re.compile(r'\b(stairways_[a-z0-9_]+)\{job="([a-z_]+)"')


def _rules() -> list[dict[str, Any]]:
    (group,) = yaml.safe_load(RULES.read_text())["groups"]
    assert group["name"] == "stairways"
    return group["rules"]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def _literal_keys(node: ast.expr) -> list[str]:
    """The string keys of every dict display in ``node`` (``{...}``, and ``**{...}`` or ``**({...} if c else {})``
    parts); keys a comprehension computes are not literal and left out."""
    return [
        key.value
        for part in ast.walk(node)
        if isinstance(part, ast.Dict)
        for key in part.keys
        if isinstance(key, ast.Constant) and isinstance(key.value, str)
    ]


def _pushed() -> dict[str, set[str]]:
    """Every ``push_metrics(..., job=..., metrics=...)`` call in the project's packages: job -> the Prometheus
    names it pushes (its literal metric keys, and the push time every push adds)."""
    pushed: dict[str, set[str]] = {}
    packages = [path for path in REPO.iterdir() if path.is_dir() and not path.name.startswith((".", "tests"))]
    for path in sorted(source for package in packages for source in package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "push_metrics":
                keywords = {keyword.arg: keyword.value for keyword in node.keywords}
                names = pushed.setdefault(ast.literal_eval(keywords["job"]), {LAST_PUSH_METRIC})
                names.update(metric_name(key) for key in _literal_keys(keywords["metrics"]))
    return pushed


def test_the_rules_read_only_metrics_the_flow_pushes_and_name_their_job() -> None:
    pushed = _pushed()
    assert {"stairways_training", "stairways_validation", "stairways_drift"} <= set(pushed)
    assert "stairways_controller_health" in pushed["stairways_training"] & pushed["stairways_validation"]
    for rule in _rules():
        expression = rule["expr"]
        selectors = _SELECTOR.findall(expression)
        names = _METRIC.findall(re.sub(r'"[^"]*"', '""', expression))  # not label values
        assert len(selectors) == len(names), (rule, "every metric names its job")
        for name, job in selectors:
            assert name in pushed.get(job, set()), f"{name} is not pushed under job {job}: {sorted(pushed)}"


def test_every_alert_has_a_severity_a_summary_and_its_value() -> None:
    alerts = _alerts()
    assert {rule["alert"] for rule in alerts} == {
        "StairwaysNoGoodNight",
        "StairwaysNightMetricsAbsent",
        "StairwaysGateRejectionRun",
        "StairwaysDrift",
        "StairwaysLowControllerHealth",
    }
    for rule in alerts:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"] and "$value" in annotations["description"], rule["alert"]


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    cases = [
        case
        for group in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in group.get("alert_rule_test", [])
    ]
    for rule in _alerts():
        expected = [case["exp_alerts"] for case in cases if case["alertname"] == rule["alert"]]
        assert any(expected) and not all(expected), f"{rule['alert']}: needs a firing and a quiet case"


def _promtool(*arguments: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").is_file() else None)
    if found is None:
        pytest.skip("promtool is not installed (`make promtool` takes it out of Debian's prometheus package)")
    return subprocess.run(
        [found, *map(str, arguments)], cwd=cwd, capture_output=True, text=True, check=False, timeout=300
    )


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


@pytest.mark.slow
def test_promtool_accepts_the_rules_and_the_prometheus_config() -> None:
    rules = _promtool("check", "rules", "ops/prometheus/alerts.yml")
    assert rules.returncode == 0, _output(rules)
    # rule_files are relative to the config file, so this checks the rules the container loads too.
    config = _promtool("check", "config", "ops/prometheus/prometheus.yml")
    assert config.returncode == 0, _output(config)
    assert "alerts.yml" in config.stdout


@pytest.mark.slow
def test_the_rules_pass_their_unit_tests() -> None:
    result = _promtool("test", "rules", "ops/prometheus/alerts_test.yml")
    assert result.returncode == 0, _output(result)
    assert "SUCCESS" in result.stdout


@pytest.mark.slow
def test_a_wrong_expectation_fails_the_unit_tests(tmp_path: Path) -> None:
    """One group of alerts_test.yml as it is passes; with an alert expected where none fires, promtool fails."""
    shutil.copy(RULES, tmp_path / RULES.name)
    document = yaml.safe_load(RULE_TESTS.read_text())
    (group,) = [group for group in document["tests"] if group["name"] == "controller health"]
    document["tests"] = [group]
    (tmp_path / "as_written.yml").write_text(yaml.safe_dump(document))
    as_written = _promtool("test", "rules", "as_written.yml", cwd=tmp_path)
    assert as_written.returncode == 0, _output(as_written)

    (quiet,) = [case for case in group["alert_rule_test"] if not case["exp_alerts"]]
    quiet["exp_alerts"] = [
        {"exp_labels": {"severity": "warning", "job": "stairways_validation", "model": "stairways-agent"}}
    ]
    (tmp_path / "wrong.yml").write_text(yaml.safe_dump(document))
    wrong = _promtool("test", "rules", "wrong.yml", cwd=tmp_path)
    assert wrong.returncode != 0, _output(wrong)
    output = wrong.stdout + wrong.stderr
    assert "FAILED" in output and "StairwaysLowControllerHealth" in output
