# The two commands of the README's quick start. Each sets up what it needs first.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: run test test-slow lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

## run: set up, drop the samples into their senders' inboxes, run the pipeline once over them
run: $(BIN)/.installed
	@$(BIN)/python -c 'import pathlib, shutil; from gateway import partners; \
	from mappings.x12 import outline; reg = partners.load_all(); \
	[print(f, "->", shutil.copy(f, (d := pathlib.Path("var/inbox", p.id)).mkdir(parents=True, exist_ok=True) or d)) \
	 for f in sorted(pathlib.Path("samples/x12").glob("*.edi")) \
	 for ic in outline.scan(f)[:1] if (p := reg.find_by_sender(ic.sender_qualifier, ic.sender_id))]; \
	[print(f, "->", shutil.copy(f, (d := pathlib.Path("var/inbox", f.parent.name)).mkdir(parents=True, exist_ok=True) or d)) \
	 for f in sorted(pathlib.Path("samples/partners").glob("*/*"))]'
	$(BIN)/edigw run --once
	@echo "events: var/erp/events.jsonl   acknowledgments: var/outbox/<partner>/   store: var/edigw.db"

## test: set up, then run the checks and the whole test suite
test: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m mappings.x12.mapgen --check
	$(BIN)/python -m pytest -m "not slow"

## test-slow: the long runs kept out of the PR suite (1,000 mutations against pyx12, ...)
test-slow: $(BIN)/.installed
	$(BIN)/python -m pytest -m slow

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/lint-imports

## bench: the benchmarks under bench/ (ratios against a baseline measured in the same run)
bench: $(BIN)/.installed
	$(BIN)/python bench/x12_validate.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
