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

## Fast test suite (the default).
test: setup
	$(PY) -m pytest $(ARGS)

## Slow tests only (training, end-to-end); CI runs them after `make test`.
test-slow: setup
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

## Re-resolve and re-verify the exact dependency set after changing pyproject.toml (then commit the lock).
lock: setup
	{ echo "# Exact, verified set installed by \`make\` (regenerate with \`make lock\` after changing pyproject.toml)."; \
	  echo "# torch is the local CPU build (torch==2.13.0 -> 2.13.0+cpu); fastapi stays below 0.155 for prefect 3.8.8's server."; \
	  $(PY) -m pip freeze --all | grep -vE '^(pip|wheel|-e |stairways)'; } > requirements.lock
