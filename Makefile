# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= configs/demo.yaml

# Embedded defaults: Prefect's ephemeral API (SQLite under .prefect/), MLflow on SQLite.
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 90
export GX_ANALYTICS_ENABLED := false
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1

.PHONY: install run test bench scenarios clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: install
	$(BIN)/gates demo-data --config $(CONFIG)
	$(BIN)/gates run --config $(CONFIG)

test: install
	$(BIN)/pytest -n 2 --dist loadfile -q

bench: install
	$(BIN)/python -m bench.run

scenarios: install
	$(BIN)/gates demo-data --config $(CONFIG)
	$(BIN)/gates scenarios --config $(CONFIG) --clean 10

clean:
	rm -rf data mlflow.db mlartifacts .prefect bench/results/*.json
