# The README's two commands: `make demo` (main job on the emulator, ends with an HTML report) and `make test`.
# Both bootstrap themselves: a .venv with the project and its dev extra, plus a Jupyter kernel named bedrock-lab.
# Re-running is fast: the install step re-runs only when pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.bedrock-lab-installed
SWEEP  ?= params/sweeps/demo.yaml
# the suite runs in this many parallel workers (pytest-xdist); most of its time is waiting on real runs
TEST_WORKERS ?= 2

.PHONY: demo test lint lab setup clean help
.DEFAULT_GOAL := help

help:
	@echo "make demo   run the demo sweep on the embedded emulator and write an HTML report"
	@echo "make test   run the whole test suite (lint included)"
	@echo "make lab    JupyterLab at the repo root (notebooks/ open as notebooks); prints its URL; works as root"
	@echo "            NO_BROWSER=1: do not open a browser; LAB_PORT=8890: another port (default 8888)"
	@echo "make setup  only create .venv and install the project"

setup: $(STAMP)

$(STAMP): pyproject.toml .jupyterlab-overrides.json
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "bedrock-lab needs Python 3.11+, found " + sys.version.split()[0] + " (set PYTHON=python3.11)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name bedrock-lab --display-name "Python (bedrock-lab)" >/dev/null
	@mkdir -p $(VENV)/share/jupyter/lab/settings
	@cp .jupyterlab-overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/bedrock-lab demo --sweep $(SWEEP)

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

LAB_PORT ?= 8888
lab: $(STAMP)
	$(BIN)/bedrock-lab lab --port $(LAB_PORT) $(if $(NO_BROWSER),--no-browser)

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) outputs/*/ .pytest_cache .ruff_cache
