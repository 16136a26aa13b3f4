# The two set-up commands are `make run` and `make test`; both create .venv from requirements.lock on first use
# and reuse it afterwards (the stamp is rebuilt only when the lock or pyproject.toml change).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stairways-installed
ARGS ?=

export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_LOGGING_LEVEL ?= INFO
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120

.PHONY: setup run test test-slow test-all bench lock clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	@touch $(STAMP)

setup: $(STAMP)

## Run the nightly retrain flow once, locally, on the embedded default (synthetic market, SQLite MLflow store).
run: setup
	$(VENV)/bin/stairways run $(ARGS)

## Fast test suite (the default), after the import contracts of pyproject.toml (layers only point down).
test: setup
	$(VENV)/bin/lint-imports
	$(PY) -m pytest $(ARGS)

## Slow tests only (training, end-to-end, browsers, promtool on the alert rules); CI runs them after `make test`.
test-slow: setup browsers promtool
	$(PY) -m pytest -m slow $(ARGS)

test-all: test test-slow

## Benchmarks: installs the peer packages they compare against, then runs every benchmarks/bench_*.py.
BENCH_PEERS := .bench-peers
$(BENCH_PEERS)/.installed: requirements-bench.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --upgrade --target $(BENCH_PEERS) -r requirements-bench.txt
	@touch $@

bench: setup $(BENCH_PEERS)/.installed
	@set -e; for script in benchmarks/bench_*.py; do echo "== $$script"; PYTHONPATH=$(BENCH_PEERS) $(PY) $$script; done

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

## Write the exact dependency set of .venv to requirements.lock (then commit it). After changing pyproject.toml:
## install the new pins into .venv by hand (.venv/bin/pip install ...), then `make lock`; it refuses a broken set.
lock:
	$(PY) -m pip check
	{ echo "# Exact, verified set installed by \`make\` (regenerate with \`make lock\` after changing pyproject.toml)."; \
	  echo "# torch is the local CPU build (torch==2.13.0 -> 2.13.0+cpu); fastapi below 0.151 and SQLAlchemy below 2.1 for prefect 3.8.8 (see pyproject.toml)."; \
	  $(PY) -m pip freeze --all | grep -vE '^(pip|wheel|-e |stairways)'; } > requirements.lock

## Run it like production, on loopback: Prefect server and UI, MLflow tracking server (SQL store, artifact serving)
## and a process worker; registers the deployments of prefect.yaml; Ctrl+C stops everything. State and logs go to
## .stairways/serve. Postgres: ARGS="--prefect-database-url postgresql+asyncpg://... --mlflow-backend-store-uri
## postgresql://...". Push gateway: STAIRWAYS_PUSHGATEWAY=host:9091.
.PHONY: serve browsers promtool schedule screenshots
PREFECT_PORT ?= 4200
MLFLOW_PORT ?= 5000
serve: setup
	$(PY) -m ops.serve up --prefect-port $(PREFECT_PORT) --mlflow-port $(MLFLOW_PORT) $(ARGS)

## Chromium for the browser tests (Debian package; Playwright drives /usr/bin/chromium, it cannot download
## browsers). Never fails the build: without chromium the browser tests skip and say why.
browsers:
	@if [ -x /usr/bin/chromium ]; then echo "browsers: $$(/usr/bin/chromium --version 2>/dev/null | head -1)"; \
	else \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	  { $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
	    || echo "browsers: chromium could not be installed; the browser tests will be skipped"; \
	fi

## promtool for the alert-rule tests (tests/ops/test_alert_rules.py), taken out of Debian's prometheus package
## rather than installing it, which would also start a Prometheus server on port 9090. Never fails the build:
## without promtool those tests skip and say why.
promtool:
	@if command -v promtool >/dev/null; then echo "promtool: $$(promtool --version 2>&1 | head -1)"; \
	else \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	  folder=$$(mktemp -d); \
	  { $$SUDO apt-get update -qq && (cd $$folder && apt-get download -qq prometheus) \
	    && dpkg-deb -x $$folder/prometheus_*.deb $$folder/package \
	    && $$SUDO install -m 0755 $$folder/package/usr/bin/promtool /usr/local/bin/promtool; } \
	    || echo "promtool: promtool could not be installed; the alert-rule tests will be skipped"; \
	  rm -rf $$folder; \
	fi

## Check that the nightly schedule in prefect.yaml is the expected cron (weekdays 17:30 America/New_York).
schedule: setup
	$(PY) -m ops.serve schedule $(ARGS)

## Re-take the README screenshots (docs/*.png) with the browser tests.
screenshots: setup browsers
	STAIRWAYS_DOCS_SCREENSHOTS=1 $(PY) -m pytest -m slow tests/ops/test_browser.py $(ARGS)
