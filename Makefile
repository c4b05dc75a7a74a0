# Redress: `make run` starts the stack on embedded defaults; `make test` runs lint and every test.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint unit e2e migrate bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m shared.devstack

lint: $(STAMP)
	$(BIN)/ruff check .

test: lint
	$(BIN)/pytest -q -rfE; rc=$$?; if [ $$rc -eq 5 ]; then rc=0; fi; exit $$rc

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

e2e: $(STAMP)
	$(BIN)/pytest -q tests/e2e

migrate: $(STAMP)
	$(BIN)/python -m shared.migrate all

# Measures the stack against this machine's own ceilings (docs/performance.md); BENCH_QUICK=1 for ~2 minutes.
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf data artifacts .pytest_cache
