# kiln: `make demo` sets up and suggests the next recipes for the seed campaign; `make test` runs the tests.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kiln-installed

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup browser demo lint test test-fast ui clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0   # the local CPU wheel; must come before botorch
	$(BIN)/python -m pip install -q -e '.[test,peers]'
	touch $(STAMP)

setup: $(STAMP)

# Debian's Chromium for the browser test of the MLflow UI (tests/test_ui.py, driven by playwright)
browser:
	@command -v chromium >/dev/null 2>&1 || $(SUDO) apt-get install -y -q chromium || \
		($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium)

demo: setup
	$(BIN)/kiln suggest -n 4
	$(BIN)/kiln history

lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

test: setup browser lint
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

ui: setup
	$(BIN)/kiln ui

clean:
	rm -rf $(VENV) .pytest_cache
