# The README's two commands: `make run` (main job on the embedded default) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)
export DVC_NO_ANALYTICS := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: run test venv bench ui study clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip check
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/dvc repro
	@echo "== summary (data/report/summary.txt; full report: data/report/index.html) =="
	@cat data/report/summary.txt

# Two test processes of one torch thread each: the suite is half waiting (subprocess stages, servers), so two
# overlap well on two cores (a module stays on one process: its fixtures are built once); more torch threads
# than cores makes every process crawl.
test: $(STAMP)
	$(BIN)/ruff check .
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadscope

bench: $(STAMP)
	$(BIN)/python bench/features.py

# Prefect server on 127.0.0.1:$(UI_PORT) + the `pipeline` (cron: params.yaml flows.schedule) and `stage`
# deployments; Ctrl-C stops both. PREFECT_HOME (database, server log) lives outside the repository.
UI_PORT ?= 4200
ui: $(STAMP)
	$(BIN)/python -m flows ui --port $(UI_PORT)

# The papers' ablation tables as DVC experiments, collected with seeds (README "Reproducing the papers'
# ablations"); `make study TABLES=gshn-table5,control SEEDS=3`. Needs a committed workspace.
TABLES ?= gshn-table5,control
SEEDS ?= 3
BUDGET ?= cpu
study: $(STAMP)
	$(BIN)/python -m stages.study --tables $(TABLES) --seeds $(SEEDS) --budget $(BUDGET)

clean:
	rm -rf data .dvc/tmp bench/results
