# Developer entry points. Everything runs from the project venv (.venv); PostgreSQL
# and Redis come from DATABASE_URL / REDIS_URL when set, otherwise `python -m devenv`
# starts embedded ones under .var/ (devenv/local.py says how they are shared).

VENV        := .venv
PY          := $(VENV)/bin/python
PYTHON      ?= python3
DEVENV      := $(PY) -m devenv
APPS        := intent_project commands_app events_app projections_app devenv
PYTEST_ARGS ?=
# Two test processes (each with its own test database and Redis database); a module stays
# on one process, the fault tier runs its clusters one at a time. PYTEST_XDIST= runs serially.
PYTEST_XDIST ?= -n 2 --dist loadgroup

.DEFAULT_GOAL := help
.PHONY: help install run test test-unit test-integration test-api test-faults test-browser lint import-graph format services-status \
        services-stop clean bench

help: ## List the targets
	@echo "Usage: make <target> [PYTEST_ARGS='...'] [PORT=8000]"
	@echo
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  %-18s %s\n", $$1, $$2}'

# Re-run when pyproject.toml changes; creates the venv only if it does not exist yet.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev]'
	touch $@

install: $(VENV)/.installed ## Create .venv and install the project with dev extras

run: $(VENV)/.installed ## Bootstrap the demo tenant, then run the Procfile: web + celery worker + beat
	$(DEVENV) run

test: $(VENV)/.installed ## Run the whole test suite (PYTEST_ARGS="tests/unit -x" to narrow)
	$(DEVENV) exec -- $(PY) -m pytest $(PYTEST_XDIST) $(PYTEST_ARGS)

test-unit: $(VENV)/.installed ## Run tests/unit
	$(DEVENV) exec -- $(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: $(VENV)/.installed ## Run tests/integration
	$(DEVENV) exec -- $(PY) -m pytest tests/integration $(PYTEST_ARGS)

test-api: $(VENV)/.installed ## Run tests/api
	$(DEVENV) exec -- $(PY) -m pytest tests/api $(PYTEST_ARGS)

test-browser: $(VENV)/.installed ## Run tests/browser (headless Chromium; screenshots in .var/test-artifacts/browser)
	$(DEVENV) exec -- $(PY) -m pytest tests/browser $(PYTEST_ARGS)

# The fault tier brings its own PostgreSQL and Redis (tests/faults/cluster.py); `make test`
# runs it too.
test-faults: $(VENV)/.installed ## Run tests/faults (kill -9, Redis outages, PostgreSQL restarts)
	$(DEVENV) exec -- $(PY) -m pytest tests/faults -rA $(PYTEST_ARGS)

# The bench extra (the eventsourcing library, a baseline) stays out of `make test`'s path.
$(VENV)/.installed-bench: $(VENV)/.installed
	$(PY) -m pip install -e '.[bench]'
	touch $@

bench: $(VENV)/.installed-bench ## Run the benchmarks (BENCH_SCALE=0.1 quick; table + JSON in BENCH_OUT)
	$(DEVENV) exec -- $(PY) manage.py bench

# django-stubs imports the settings, which refuse to load without a SECRET_KEY.
lint: $(VENV)/.installed ## ruff check + mypy + import contracts (what CI gates on)
	$(PY) -m ruff check .
	SECRET_KEY="$${SECRET_KEY:-mypy-only-reads-the-settings}" $(PY) -m mypy $(APPS)
	$(VENV)/bin/lint-imports

import-graph: $(VENV)/.installed ## Print the imports between the four apps (-v: every one)
	$(PY) scripts/import_graph.py

format: $(VENV)/.installed ## Apply ruff's formatting
	$(PY) -m ruff format .

services-status: ## Show the embedded PostgreSQL/Redis (if any)
	@if [ -x $(PY) ]; then $(DEVENV) status; else echo "no $(VENV): nothing running"; fi

services-stop: ## Stop the embedded PostgreSQL/Redis
	@if [ -x $(PY) ]; then $(DEVENV) stop; fi

clean: services-stop ## Stop embedded services and delete .var/ (their data)
	rm -rf .var
