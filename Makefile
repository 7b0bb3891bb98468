# Two commands on a fresh machine: `make up` and `make test`. Everything else is set up by them.
PYTHON ?= python3
# Test processes (pytest-xdist); most tests wait on servers and sandboxes, so two share 2 cores well.
TEST_WORKERS ?= 2
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
UV_VERSION := 0.13.8

.PHONY: up test bench install lock clean help

help:
	@echo "make up     set up .venv and run the whole stack (charterflow up)"
	@echo "make test   set up .venv and run every test"
	@echo "make bench  run the benchmark scripts (not part of make test)"
	@echo "make lock   re-resolve dependencies and rewrite constraints.txt"

# The Matrix connector is a plugin (plugins/charterflow-matrix): installed beside the core, never
# imported by it; `uv pip uninstall charterflow-matrix` leaves `make up` and `make test` working.
PLUGINS := plugins/charterflow-matrix

$(STAMP): pyproject.toml constraints.txt $(PLUGINS:%=%/pyproject.toml)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "charterflow needs Python 3.11 or newer; set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# uv resolves and installs in parallel: about 10x faster than pip for this tree (bench/startup.py).
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet --disable-pip-version-check 'uv==$(UV_VERSION)'
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt -e '.[test]' $(PLUGINS:%=-e %)
	@touch $(STAMP)

install: $(STAMP)

up: install
	$(BIN)/charterflow up

test: install
	@bash scripts/test-deps.sh
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder

# What tests/test_lint.py checks, alone (make test runs it too).
.PHONY: lint
lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

bench: install
	$(BIN)/python -m bench.gateway_ack
	$(BIN)/python -m bench.ratelimit
	$(BIN)/python -m bench.scale
	$(BIN)/python -m bench.intake
	$(BIN)/python -m bench.intake --postgres --out bench/results/intake-postgres.json
	$(BIN)/python -m bench.startup
	$(BIN)/python -m bench.idle
	$(BIN)/python -m bench.flow_runs

# Rewrites the pins from a clean resolve, so a fresh install is reproducible.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]' $(PLUGINS:%=-e %)
	.lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .charterflow
