# Thin wrapper over the course's commands. The two you need:
#   make lab    create .venv (once), install the pinned dependencies, open JupyterLab on the course
#   make test   create/refresh the same .venv and run the full test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
JOBS   ?= 2
# nbgrader calls `alembic` by name: keep the venv's bin first on PATH for everything below.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup lab test test-fast release grade clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

lab: setup
	$(BIN)/cnncourse lab

test: setup
	$(BIN)/python -m pytest -n $(JOBS) --dist loadgroup

test-fast: setup
	$(BIN)/python -m pytest -n $(JOBS) -m "not slow and not browser"

release: setup
	$(BIN)/cnncourse release --all

grade: setup
	$(BIN)/cnncourse grade $(ASSIGNMENT)

clean:
	rm -rf $(VENV) autograded feedback gradebook.db reports
