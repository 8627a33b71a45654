# Two commands: `make run` (the demo) and `make test` (everything CI runs).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: run test lint typecheck unit system-deps clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## Run the exporter on its embedded demo estate (http://127.0.0.1:10113/).
run:
	./scripts/install-system-deps.sh run
	$(MAKE) $(BIN)/.installed
	$(BIN)/python -m demo

## Install what the tests need (Debian packages when missing), then lint,
## type-check and run the whole test suite.
test: system-deps $(BIN)/.installed lint typecheck unit

system-deps:
	./scripts/install-system-deps.sh

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

unit: $(BIN)/.installed
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
