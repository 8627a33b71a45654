# Two commands: `make run` (the demo) and `make test` (everything CI runs).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# The venv of `make test-lowest`: the runtime dependencies at their lower bounds.
LOWEST ?= .venv-lowest
# uv resolves the locks (`make lock` only); pip installs them.
UV_VERSION := 0.13.9
LOCK_VENV := .venv-lock

.PHONY: run test lint typecheck unit test-lowest lock system-deps clean

# Hash-pinned lock first, then the project itself without dependencies, then
# `pip check`: a runtime requirement the lock does not satisfy fails here.
define install
	$(PYTHON) -m venv $(1)
	$(1)/bin/pip install --quiet --require-hashes -r $(2)
	$(1)/bin/pip install --quiet --no-deps -e .
	$(1)/bin/pip check
	touch $(1)/.installed
endef

$(VENV)/.installed: pyproject.toml requirements/dev.txt
	$(call install,$(VENV),requirements/dev.txt)

$(LOWEST)/.installed: pyproject.toml requirements/lowest.txt
	$(call install,$(LOWEST),requirements/lowest.txt)

## Run the exporter on its embedded demo estate (http://127.0.0.1:10113/);
## ARGS go to `python -m demo` (ARGS="--web.listen-address 127.0.0.1:10114").
run:
	./scripts/install-system-deps.sh run
	$(MAKE) $(VENV)/.installed
	$(BIN)/python -m demo $(ARGS)

## Install what the tests need (Debian packages when missing), then lint,
## type-check and run the whole test suite with the branch-coverage gate.
test: system-deps $(VENV)/.installed lint typecheck unit

system-deps:
	./scripts/install-system-deps.sh

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed
	$(BIN)/mypy

# Branch coverage of exporter/; the floor is [tool.coverage.report] fail_under.
unit: $(VENV)/.installed
	$(BIN)/pytest --cov --cov-report=term-missing:skip-covered

## The test suite against the lowest versions pyproject.toml allows for the
## runtime dependencies (requirements/lowest.txt), in its own venv.
test-lowest: system-deps $(LOWEST)/.installed
	$(LOWEST)/bin/pytest -p no:cacheprovider

## Regenerate the locks in requirements/ from pyproject.toml (needs the
## package index; run after changing a dependency, commit the result).
lock:
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet uv==$(UV_VERSION)
	UV=$(LOCK_VENV)/bin/uv ./scripts/lock.sh

clean:
	rm -rf $(VENV) $(LOWEST) $(LOCK_VENV) .demo .pytest_cache .mypy_cache \
		.ruff_cache .coverage
