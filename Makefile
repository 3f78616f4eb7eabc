# Everything a newcomer needs: `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test test-all bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# One stamp per install flavour, redone when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/bigtopd examples/quickstart.ini

test: $(VENV)/.installed-test
	$(BIN)/pytest -m "not slow"

test-all: $(VENV)/.installed-test
	$(BIN)/pytest

bench: $(VENV)/.installed
	$(BIN)/python bench/lifecycle.py

lint: $(VENV)/.installed-test
	$(BIN)/ruff check bigtop tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) bench/.venv-anchors .pytest_cache .mypy_cache .ruff_cache
