"""The server stack's compose file, Dockerfile and .env.example, checked statically (no Docker engine needed).

`tests/ops/test_postgres_stack.py` runs the same configuration natively against a real PostgreSQL.
"""

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
ONE_SHOT = {"preflight", "postgres-init", "deploy"}
LONG_RUNNING = set(SERVICES) - ONE_SHOT
PROJECT_IMAGE_SERVICES = {"prefect-server", "mlflow", "worker", "deploy"}
_REFERENCE = re.compile(r"\$\{(?P<name>[A-Z_][A-Z0-9_]*)(?:(?P<kind>:-|:\?|-|\?)(?P<argument>[^}]*))?\}")


def _env_example() -> dict[str, str]:
    values = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def _interpolate(text: str, variables: dict[str, str]) -> str:
    """Compose's variable substitution: ${VAR}, ${VAR:-default}, ${VAR:?error}; $$ is a literal dollar."""

    def substitute(match: re.Match[str]) -> str:
        name, kind, argument = match.group("name"), match.group("kind"), match.group("argument")
        value = variables.get(name)
        if kind in (":-", "-") and not value:
            return argument
        if value is None:
            raise KeyError(name)
        return value

    return _REFERENCE.sub(substitute, text.replace("$$", "\0")).replace("\0", "$")


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return [value] if isinstance(value, str) else []


def _environment(service: str) -> dict[str, str]:
    environment = SERVICES[service].get("environment") or {}
    assert isinstance(environment, dict), f"{service}: use the mapping form of environment"
    return {key: str(value) for key, value in environment.items()}


def _command(service: str) -> list[str]:
    command = SERVICES[service]["command"]
    return command if isinstance(command, list) else command.split()


def test_the_stack_has_every_service() -> None:
    assert set(SERVICES) == {
        "preflight",
        "postgres",
        "postgres-init",
        "prefect-server",
        "mlflow",
        "pushgateway",
        "prometheus",
        "worker",
        "deploy",
    }


def test_images_are_pinned_and_the_project_image_is_built_from_the_dockerfile() -> None:
    assert SERVICES["postgres"]["image"] == SERVICES["postgres-init"]["image"] == "postgres:16-alpine"
    assert SERVICES["preflight"]["image"] == "postgres:16-alpine"
    assert re.fullmatch(r"prom/pushgateway:v\d+\.\d+\.\d+", SERVICES["pushgateway"]["image"])
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", SERVICES["prometheus"]["image"])
    for name in PROJECT_IMAGE_SERVICES:
        service = SERVICES[name]
        assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name
        assert _interpolate(service["image"], {}) == "stairways:latest", name
    for name, service in SERVICES.items():
        assert not service["image"].endswith(":latest") or name in PROJECT_IMAGE_SERVICES, name


def test_every_long_running_service_has_a_healthcheck_and_restarts() -> None:
    for name in LONG_RUNNING:
        check = SERVICES[name].get("healthcheck")
        assert check and check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert {"interval", "timeout", "retries", "start_period"} <= set(check), name
        assert SERVICES[name]["restart"] == "unless-stopped", name
    for name in ONE_SHOT:
        assert SERVICES[name]["restart"] == "no", name
        assert "healthcheck" not in SERVICES[name], name


def test_dependencies_wait_for_health_or_completion() -> None:
    expected = {
        "postgres": {"preflight"},
        "postgres-init": {"postgres"},
        "prefect-server": {"postgres"},
        "mlflow": {"postgres", "postgres-init"},
        "prometheus": {"pushgateway"},
        "worker": {"prefect-server", "mlflow", "pushgateway"},
        "deploy": {"prefect-server", "worker"},
    }
    for name, needs in expected.items():
        depends_on = SERVICES[name]["depends_on"]
        assert isinstance(depends_on, dict) and set(depends_on) == needs, name
        for dependency, rule in depends_on.items():
            wanted = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert rule == {"condition": wanted}, (name, dependency)
            assert dependency in ONE_SHOT or "healthcheck" in SERVICES[dependency]


@pytest.mark.parametrize("variables", [{}, _env_example()], ids=["compose defaults", ".env.example"])
def test_published_ports_bind_to_loopback(variables: dict[str, str]) -> None:
    published = {}
    for name, service in SERVICES.items():
        for mapping in service.get("ports", []):
            host, host_port, container_port = _interpolate(mapping, variables).rsplit(":", 2)
            assert host == "127.0.0.1", (name, mapping)
            published[name] = (int(host_port), int(container_port))
    assert published == {
        "prefect-server": (4200, 4200),
        "mlflow": (5000, 5000),
        "pushgateway": (9091, 9091),
        "prometheus": (9090, 9090),
    }
    assert "ports" not in SERVICES["postgres"] and "ports" not in SERVICES["worker"]


def _preflight(password: str) -> subprocess.CompletedProcess[str]:
    """The preflight service's shell command, run by a real shell with ``password`` for every secret."""
    script = _interpolate(_command("preflight")[2], {})
    names = ("POSTGRES_PASSWORD", "PREFECT_AUTH_PASSWORD", "MLFLOW_ADMIN_PASSWORD", "MLFLOW_SECRET_KEY")
    environment = dict.fromkeys(names, password)
    return subprocess.run(
        ["sh", "-c", script],
        env={"PATH": "/usr/bin:/bin", **environment},
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_stack_refuses_the_example_password_and_short_ones() -> None:
    refused = _preflight(_env_example()["POSTGRES_PASSWORD"])
    assert refused.returncode == 1 and "not the example" in refused.stderr
    assert _preflight("short-pw").returncode == 1
    assert _preflight("a-real-long-password-42").returncode == 0


def test_both_servers_ask_for_credentials_and_the_clients_send_them() -> None:
    prefect = _environment("prefect-server")
    assert "PREFECT_AUTH_PASSWORD" in prefect["PREFECT_SERVER_API_AUTH_STRING"]
    for client in ("worker", "deploy"):
        assert _environment(client)["PREFECT_API_AUTH_STRING"] == prefect["PREFECT_SERVER_API_AUTH_STRING"]
    mlflow = _environment("mlflow")
    command = _command("mlflow")
    assert command[command.index("--app-name") + 1] == "basic-auth"
    assert (REPO / mlflow["MLFLOW_AUTH_CONFIG_PATH"].removeprefix("/app/")).is_file()
    assert "MLFLOW_ADMIN_PASSWORD" in mlflow["MLFLOW_AUTH_ADMIN_PASSWORD"]
    worker = _environment("worker")
    assert worker["MLFLOW_TRACKING_USERNAME"] == "admin"
    assert worker["MLFLOW_TRACKING_PASSWORD"] == mlflow["MLFLOW_AUTH_ADMIN_PASSWORD"]


def test_services_are_wired_by_environment() -> None:
    example = _env_example()
    prefect_db = _interpolate(_environment("prefect-server")["PREFECT_API_DATABASE_CONNECTION_URL"], example)
    assert prefect_db == "postgresql+asyncpg://stairways:change-me@postgres:5432/prefect"
    assert (
        _interpolate(_environment("prefect-server")["PREFECT_UI_API_URL"], example)
        == "http://127.0.0.1:4200/api"
    )
    mlflow_store = _interpolate(_environment("mlflow")["MLFLOW_BACKEND_STORE_URI"], example)
    assert mlflow_store == "postgresql://stairways:change-me@postgres:5432/mlflow"
    assert "mlflow:5000" in _environment("mlflow")["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert _environment("mlflow")["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    worker = _environment("worker")
    assert worker["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert worker["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert worker["STAIRWAYS_PUSHGATEWAY"] == "pushgateway:9091"
    assert worker["STAIRWAYS_HOME"] == "/app"
    assert _environment("deploy")["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert _interpolate(_environment("postgres-init")["MLFLOW_DB"], example) == "mlflow"


def test_mlflow_serves_artifacts_from_a_named_volume_and_state_is_on_volumes() -> None:
    command = _command("mlflow")
    assert command[:2] == ["mlflow", "server"] and "--serve-artifacts" in command
    destination = command[command.index("--artifacts-destination") + 1]
    assert f"mlflow-artifacts:{destination}" in SERVICES["mlflow"]["volumes"]
    assert "postgres-data:/var/lib/postgresql/data" in SERVICES["postgres"]["volumes"]
    assert "worker-state:/app/.stairways" in SERVICES["worker"]["volumes"]
    assert "mlflow-auth:/mlauth" in SERVICES["mlflow"]["volumes"]
    assert "prometheus-data:/prometheus" in SERVICES["prometheus"]["volumes"]
    assert set(COMPOSE["volumes"]) == {
        "postgres-data",
        "mlflow-artifacts",
        "mlflow-auth",
        "worker-state",
        "prometheus-data",
    }


def test_prometheus_loads_the_alert_rules_and_scrapes_the_push_gateway() -> None:
    prometheus = SERVICES["prometheus"]
    assert "./ops/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    command = _command("prometheus")
    assert "--config.file=/etc/prometheus/prometheus.yml" in command
    assert "--storage.tsdb.path=/prometheus" in command
    assert not any(flag.startswith(("--web.enable-admin-api", "--web.enable-lifecycle")) for flag in command)
    folder = REPO / "ops" / "prometheus"
    config = yaml.safe_load((folder / "prometheus.yml").read_text())
    rule_files = [folder / name for name in config["rule_files"]]  # relative to the config file
    assert folder / "alerts.yml" in rule_files and all(path.is_file() for path in rule_files)
    (scrape,) = config["scrape_configs"]
    assert scrape["honor_labels"] is True
    assert scrape["static_configs"] == [{"targets": [_environment("worker")["STAIRWAYS_PUSHGATEWAY"]]}]
    assert "http://127.0.0.1:9090/-/healthy" in prometheus["healthcheck"]["test"]


def test_worker_serves_the_pool_the_deployments_use() -> None:
    pools = {
        entry["work_pool"]["name"]
        for entry in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    }
    command = _command("worker")
    assert command[:3] == ["prefect", "worker", "start"]
    assert {command[command.index("--pool") + 1]} == pools
    assert command[command.index("--type") + 1] == "process" and "--with-healthcheck" in command
    assert _command("deploy") == ["prefect", "--no-prompt", "deploy", "--all"]


def test_no_literal_secrets_and_every_variable_is_documented() -> None:
    example = _env_example()
    texts = _strings(COMPOSE)
    referenced = {
        match.group("name") for text in texts for match in _REFERENCE.finditer(text.replace("$$", ""))
    }
    assert referenced <= set(example), sorted(referenced - set(example))
    assert set(example) <= referenced, sorted(set(example) - referenced)
    for name in ("POSTGRES_PASSWORD", "PGPASSWORD"):
        for service in SERVICES:
            value = _environment(service).get(name)
            assert value is None or value.startswith("${POSTGRES_PASSWORD:?"), (service, name)
    for text in texts:
        for credentials in re.findall(r"://([^@/\s]+)@", text):
            assert re.fullmatch(r"\$\{[A-Z_]+\}:\$\{POSTGRES_PASSWORD\}", credentials), text
    assert example["POSTGRES_PASSWORD"] == "change-me"
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()


def test_dockerfile_installs_the_lock_then_the_project() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert dockerfile.splitlines()[
        [line.startswith("FROM") for line in dockerfile.splitlines()].index(True)
    ] == ("FROM python:3.11-slim")
    lock_install = dockerfile.index("-r requirements.lock")
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in dockerfile
    assert dockerfile.index("COPY . .") > lock_install
    assert dockerfile.index("pip install --no-deps --no-build-isolation -e .") > dockerfile.index("COPY . .")
    assert "USER stairways" in dockerfile
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert {".env", ".venv", ".git", "mlflow.db", ".stairways"} <= set(ignored)
