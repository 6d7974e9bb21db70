# kiln: `make demo` sets up and suggests the next recipes for the seed campaign; `make test` runs the tests.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kiln-installed

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup browser postgres demo lint test test-fast ui clean

# pip's own chatter (setuptools deprecation warnings of dependencies' builds) goes to $(VENV)/setup.log,
# shown only if the install fails
PIP := $(BIN)/python -m pip install -q --disable-pip-version-check
LOG := $(VENV)/setup.log

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	@echo "installing torch 2.13.0 (CPU) and kiln into $(VENV); log: $(LOG)"
	@($(PIP) --upgrade pip && \
	  $(PIP) torch==2.13.0 && \
	  $(PIP) -e '.[test,peers,ray,postgres]') > $(LOG) 2>&1 || (cat $(LOG); exit 1)
	@echo "building BoTorch's fused qLogEHVI kernel once (optimize/kernels.py; about a minute)"
	@$(BIN)/python -m optimize.kernels
	touch $(STAMP)

setup: $(STAMP)

# Debian's Chromium for the browser test of the MLflow UI (tests/test_ui.py, driven by playwright)
browser:
	@command -v chromium >/dev/null 2>&1 || $(SUDO) apt-get install -y -q chromium || \
		($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium)

# Debian's PostgreSQL for the lab-server test (tests/test_lab_server.py starts a throwaway cluster of its own)
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || $(SUDO) apt-get install -y -q postgresql || \
		($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q postgresql)

demo: setup
	$(BIN)/kiln suggest -n 4
	$(BIN)/kiln history

lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

test: setup browser postgres lint
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

ui: setup
	$(BIN)/kiln ui

clean:
	rm -rf $(VENV) .pytest_cache
