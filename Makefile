# The two commands of the README's quick start. Each sets up what it needs first.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

## run: set up, then run the gateway's main job on its embedded default
run: $(BIN)/.installed
	$(BIN)/edigw validate samples/x12/*.edi --ack-dir var/outbox

## test: set up, then run the checks and the whole test suite
test: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m mappings.x12.mapgen --check
	$(BIN)/python -m pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/lint-imports

## bench: the benchmarks under bench/ (ratios against a baseline measured in the same run)
bench: $(BIN)/.installed
	$(BIN)/python bench/x12_validate.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
