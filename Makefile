# Two entry points on a fresh machine (see README.md):
#   make run    install, then run the default workflow end to end (embedded digits model, CPU)
#   make test   install, then run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: run test lint install seeds

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

# Replicates: the whole default workflow once per seed (config key `seeds`; seed 0 is the main run in results/, the
# others run in replicates/seed-N/, each with its own base model), then results/tables/seeds.md: the per-seed table
# with means and 95 % intervals. CONCEPTS='["one","four","eight"]' for other digits.
SEEDS ?= 0 1 2 3 4
comma := ,
space := $(subst ,, )
seeds: install
	$(BIN)/snakemake --cores $(CORES) --config 'seeds=[$(subst $(space),$(comma),$(strip $(SEEDS)))]' $(if $(CONCEPTS),'concepts=$(CONCEPTS)')
	cat results/tables/seeds.md
