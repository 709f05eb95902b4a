# Thin wrapper over the course's commands. The two you need:
#   make lab    create .venv (once), install the pinned dependencies, open JupyterLab on the course
#   make test   create/refresh the same .venv and run the full test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
JOBS   ?= 2
# nbgrader calls `alembic` by name: keep the venv's bin first on PATH for everything below.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup lab test test-fast release grade site clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

lab: setup
	$(BIN)/cnncourse lab

# The course-site build (tests/test_site.py, marker `site`) runs in CI (CI=true, set by .ci/run); locally
# `make test` leaves it out (it executes every lecture once more) and `make site` builds it.
SITE_TESTS = $(if $(filter true 1 yes,$(CI)),,-m "not site")

test: setup
	$(BIN)/python -m pytest -n $(JOBS) --dist loadgroup $(SITE_TESTS)

test-fast: setup
	$(BIN)/python -m pytest -n $(JOBS) -m "not slow and not browser"

release: setup
	$(BIN)/cnncourse release --all

grade: setup
	$(BIN)/cnncourse grade $(ASSIGNMENT)

# Static course website in docs/_build/html: lectures executed in SMOKE mode, assignments read-only (offline).
site: setup
	$(BIN)/python docs/build.py

clean:
	rm -rf $(VENV) autograded feedback gradebook.db reports docs/_build
