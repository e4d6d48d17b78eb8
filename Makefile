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

.PHONY: install lock run test test-all bench scenarios backtest clean system-deps server server-stop server-env

install: $(VENV)/.installed

# The whole dependency tree is pinned in requirements.lock (an unpinned transitive SQLAlchemy once
# broke Prefect's scheduler); the project itself is installed on top without resolving anything.
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/pip check
	touch $@

# Re-resolve pyproject.toml's pins (with the test and server extras) into requirements.lock.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet -e '.[test,servers]'
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^-e ' > requirements.lock
	rm -rf .lock-venv

run: install
	$(BIN)/gates demo-data --config $(CONFIG)
	$(BIN)/gates run --config $(CONFIG)

# tests/conftest.py gives each of the two workers one OpenMP/BLAS thread (two cores, never oversubscribed).
# `make test` (CI) runs every test but a sweep's further cases (marker `extended`: more seasons,
# seeds and signal points than the representative ones); `make test-all` runs those too.
test: install system-deps
	$(BIN)/pytest -n 2 --dist loadgroup -q --durations=25 -m "not extended"

test-all: install system-deps
	$(BIN)/pytest -n 2 --dist loadgroup -q --durations=25

# PostgreSQL and Chromium from Debian's packages, for the server and browser tests (root only).
system-deps:
	bash scripts/system-deps.sh

# On loopback: PostgreSQL, a Prefect server (:4200) and an MLflow server (:5000) on it; see README.
server: install
	bash scripts/server.sh start

server-stop:
	bash scripts/server.sh stop

server-env:
	@bash scripts/server.sh env

bench: install
	$(BIN)/python -m bench.run

scenarios: install
	$(BIN)/gates demo-data --config $(CONFIG)
	$(BIN)/gates scenarios --config $(CONFIG) --clean 10

# Clean monthly retrains replayed over 19 months of the demo (2.5 years of data) and 24 months of
# the real births data, each calibrated on its own history before the first replayed date.
# Tables: bench/results/backtest-<pipeline>.md/.csv; exit 1 if a clean retrain was blocked.
backtest: install
	$(BIN)/gates demo-data --config configs/demo.yaml --days 1000 --end 2026-10-31
	$(BIN)/gates real-data
	rc=0; \
	$(BIN)/gates backtest --config configs/demo.yaml --from 2025-05-01 --to 2026-11-01 --every month \
	    --calibrate --results bench/results || rc=1; \
	$(BIN)/gates backtest --config configs/births.yaml --from 1986-01-01 --to 1987-12-01 --every month \
	    --calibrate --results bench/results || rc=1; \
	exit $$rc

clean:
	rm -rf data mlflow.db mlartifacts .prefect .servers backtests bench/results/*.json
