# Two commands do everything on a fresh clone: `make run` (the main job) and `make test`.
# Both create .venv and install the pinned set first when needed.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# Offline by default: no hub, no telemetry. Real backbones: unset HF_HUB_OFFLINE for a download.
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 120
export DVC_NO_ANALYTICS := 1
# Prefect's local database and settings live in the project, like mlflow.db.
export PREFECT_HOME ?= $(CURDIR)/.prefect
export TOKENIZERS_PARALLELISM := false
# dvc.yaml stages call `metaembed`: the venv's tools come first.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help install run test bench lock clean ui serve browser postgres services services-stop deploy worker dashboard prefect-ui ui-check

help:
	@echo "make run    - the main job on the embedded default (the Prefect pipeline flow)"
	@echo "make ui     - the MLflow UI on http://127.0.0.1:5000 (runs, models, aliases)"
	@echo "make serve  - the pipeline on its cron schedule, with a Prefect server on http://127.0.0.1:4200"
	@echo "make prefect-ui - the Prefect UI over .prefect/ on http://127.0.0.1:4200 (flow runs, artifacts; schedules nothing)"
	@echo "make dashboard  - optuna-dashboard over the tuning study on http://127.0.0.1:8080"
	@echo "make ui-check   - every UI page a reviewer opens, checked in headless Chromium; screenshots in docs/ui/"
	@echo "make services      - PostgreSQL, an MLflow server on it (:5001) and a Prefect server (:4201) on 127.0.0.1, data in .services/"
	@echo "make services-stop - stop them (data stays in .services/)"
	@echo "make deploy - the pipeline, tune-worker and baselines-run deployments in the services' Prefect work pool 'metaembed'"
	@echo "make worker - a Prefect process worker of that pool on this machine (runs deployed flow runs)"
	@echo "make test   - the test suite"
	@echo "make bench  - measured benchmarks (scoring roofline)"
	@echo "make lock   - re-resolve requirements/base.in into requirements/lock.txt"

install: $(STAMP)

$(STAMP): requirements/lock.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/lock.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

# data ensure -> prepare -> pretrain -> train -> evaluate -> sweep -> index (dvc repro, skips what is unchanged)
# -> register -> promotion gate; see flows/pipeline.py and docs/orchestration.md.
run: install
	$(BIN)/python flows/pipeline.py

ui: install
	$(BIN)/metaembed ui

serve: install
	$(BIN)/python flows/serve.py

# Looking at past flow runs only: no deployment is served and the scheduler stays off (it would
# queue the deployment's runs into .prefect/ with nobody to execute them).
prefect-ui: install
	PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED=false $(BIN)/prefect server start --host 127.0.0.1 --port 4200

dashboard: install
	$(BIN)/metaembed dashboard

# After `make run` (and `metaembed tune`): starts MLflow, Prefect and optuna-dashboard on 127.0.0.1 over
# mlflow.db, .prefect/ and artifacts/tune/, checks each page in headless Chromium, writes docs/ui/*.png.
ui-check: install browser
	$(BIN)/python -m metaembed.ui_check --out docs/ui

# Debian package $(1), installed with apt-get when we are root (CI) and it is missing; otherwise
# a line saying how ($(2): what it is for). No commas in the arguments: $(call) splits on them.
define apt_install
if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
  export DEBIAN_FRONTEND=noninteractive; \
  apt-get install -y -q --no-install-recommends $(1) >/dev/null 2>&1 || \
  { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends $(1) >/dev/null 2>&1; } || \
  echo "could not install $(1) with apt-get: $(2) cannot work"; \
else echo "no $(1): install it (apt-get install $(1)) for $(2)"; fi
endef

# The UI tests render pages in a real headless Chromium (about 15 s to install). In CI a missing
# browser fails those tests with this reason; elsewhere they skip the browser checks.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-headless-shell >/dev/null 2>&1 || \
	  { $(call apt_install,chromium,the UI tests' browser checks); }

# PostgreSQL's server binaries for `make services` and the tests of the team paths (tests/services,
# tests/tracking/test_server.py, ...); METAEMBED_PG_BIN names another build.
postgres:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1 || \
	  [ -n "$$METAEMBED_PG_BIN" ] || { $(call apt_install,postgresql,the team services and their tests); }

# Ports: METAEMBED_PG_PORT, METAEMBED_MLFLOW_PORT, METAEMBED_PREFECT_PORT; then
# eval "$$(.venv/bin/metaembed services env)" points a shell (and `make run`) at them.
services: install postgres
	$(BIN)/metaembed services start

services-stop: install
	$(BIN)/metaembed services stop

# Against the services of `make services` unless PREFECT_API_URL (and MLFLOW_TRACKING_URI) name others.
SERVICES_ENV = [ -n "$$PREFECT_API_URL" ] || eval "$$($(BIN)/metaembed services env)";

deploy: install
	@$(SERVICES_ENV) $(BIN)/python flows/deploy.py

worker: install
	@$(SERVICES_ENV) $(BIN)/prefect worker start --pool metaembed --type process

test: install browser postgres
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/metaembed bench scoring --output artifacts/bench/scoring.json --plot artifacts/bench/scoring.png

lock:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements/base.in
	{ echo "# Generated by 'make lock' from requirements/base.in: the exact set the Makefile installs."; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^metaembed'; } > requirements/lock.txt

clean:
	rm -rf $(VENV) .cache .pytest_cache
