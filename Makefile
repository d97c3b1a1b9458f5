# ev-fleet-analytics — every target installs what it needs itself (venv, pinned packages, jars).
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JARS_STAMP := .jars/.complete
PYTEST_ARGS ?=

.PHONY: setup demo test bench mlflow-ui package submit-emr submit-glue browser clean-data help

help:
	@echo "make demo       set up and run the whole pipeline on the embedded default"
	@echo "make test       set up and run the test suite"
	@echo "make bench      benchmarks (not part of make test)"
	@echo "make mlflow-ui  MLflow UI on http://127.0.0.1:5000 over the local tracking store"
	@echo "make package    wheel, venv archive, Glue zip, entry scripts into dist/"

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	@command -v $(PY) >/dev/null || { echo "need $(PY) (Python 3.11) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel
	$(BIN)/pip install -q -r requirements-dev.txt -c constraints.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(JARS_STAMP): bin/fetch-jars common/versions.py
	bin/fetch-jars
	touch $@

setup: $(STAMP) $(JARS_STAMP)

demo: setup
	$(BIN)/python -m jobs.pipeline --env local $(ARGS)

# Headless Chromium for the report's browser test (Debian package); tests skip with a
# message when it cannot be installed.
browser:
	@command -v chromium >/dev/null || { (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: browser tests will skip"; }

test: setup browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m bench.run_all $(ARGS)

mlflow-ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///lakehouse/mlflow/mlflow.db --default-artifact-root lakehouse/mlflow/artifacts --host 127.0.0.1 --port 5000

clean-data:
	rm -rf lakehouse reports spark-warehouse metastore_db derby.log
