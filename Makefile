# Two entry points on a fresh machine (see README.md):
#   make run    install, then run the default workflow end to end (embedded digits model, CPU)
#   make test   install, then run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: run test check-results lint install

$(BIN)/snakemake: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e .
	touch $@

install: $(BIN)/snakemake

run: install
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/python -m unerase.acceptance results/tables/accuracy.csv

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/snakemake --lint
