# ev-fleet-analytics — every target installs what it needs itself (venv, pinned packages, jars).
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JARS_STAMP := .jars/.complete
TEST_JARS_STAMP := .jars/.complete-test
PYTEST_ARGS ?=

.PHONY: setup demo demo-payd test lint docs bench mlflow-ui serve-model package submit-emr submit-glue browser clean-data help lock

help:
	@echo "make demo       set up and run the whole pipeline on the embedded default"
	@echo "make demo-payd  the pipeline on a telematics-only PAYD export read through a dataset mapping"
	@echo "make test       set up and run the test suite"
	@echo "make bench      benchmarks (not part of make test)"
	@echo "make mlflow-ui  MLflow UI on http://127.0.0.1:5000 over the local tracking store"
	@echo "make serve-model MODEL=evfa_energy_per_km PORT=5001   REST scoring of a champion model"
	@echo "make package    wheel, venv archive, Glue zip, entry scripts into dist/"
	@echo "make lint       ruff lint + format check, import contracts, mypy, numpydoc (make test runs it first)"
	@echo "make lock       re-resolve requirements*.txt into the hashed requirements.lock (keeps existing pins)"
	@echo "make docs       regenerate docs/CONFIG.md, conf/config.schema.json, the table flow in docs/ARCHITECTURE.md"

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PY) >/dev/null || { echo "need $(PY) (Python 3.11) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel
	$(BIN)/pip install -q --require-hashes -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(JARS_STAMP): bin/fetch-jars common/core/versions.py
	bin/fetch-jars
	touch $@

# Test-only jars (~270 MB, the s3a file system for tests/test_s3_inputs.py): fetched for make test,
# not for setup, so demo and package never download them; cached in .jars/ like the others. The test
# session's class path differs from the jobs' by them, so make test builds its own class archive.
$(TEST_JARS_STAMP): bin/fetch-jars common/core/versions.py
	bin/fetch-jars --test
	touch $@

# The last step builds the local driver's class-data sharing archive once (deploy/class_archive.py:
# ~35 s; each later Spark start saves several seconds). Optional: without it drivers start as before.
setup: $(STAMP) $(JARS_STAMP)
	@$(BIN)/python -m deploy.class_archive || echo "class archive not built: Spark drivers start without it"

demo: setup
	$(BIN)/python -m jobs.pipeline --env local $(ARGS)

# A fleet the code was not tuned on, end to end in a lakehouse of its own (lakehouse-payd/): a PAYD
# operator's telematics-only CSV export (Nairobi, UTC 'Z' timestamps, ignition-only and bursty
# devices) written by the generator, then read through conf/datasets/payd_fleet.yaml as a user's
# files would be; the charging-network stages are skipped and named.
PAYD := lakehouse-payd
PAYD_STORE := --conf storage.root=$(PAYD) --conf storage.restricted_root=$(PAYD)/restricted --conf mlflow.tracking_uri=sqlite:///$(PAYD)/mlflow/mlflow.db --conf mlflow.artifact_location=$(PAYD)/mlflow/artifacts --conf report.output_dir=$(PAYD)/reports
demo-payd: setup
	$(BIN)/python -m jobs.generate --env local --conf storage.root=$(PAYD)/landing --conf storage.restricted_root=$(PAYD)/landing/restricted \
		--conf generator.region=nairobi --conf generator.layout=payd --conf generator.timestamp_style=utc_z --conf generator.network=false \
		--conf "generator.device_modes={continuous: 0.3, ignition_only: 0.45, bursty: 0.25}" --conf generator.part_time_share=0.1 \
		--conf generator.early_start_share=0.2 --conf generator.away_night_share=0.1 --conf generator.multipath_rate=0.002 $(GEN_ARGS)
	PAYD_FLEET_DIR=$(PAYD)/landing/raw $(BIN)/python -m jobs.pipeline --env local --inputs conf/datasets/payd_fleet.yaml $(PAYD_STORE) $(ARGS)

# Style and structure, all configured in pyproject.toml; make test runs it first: ruff (lint and
# format), the import contracts between the packages (import-linter), the type checker (mypy).
lint: setup
	$(BIN)/ruff check common jobs tests bench deploy
	$(BIN)/ruff format --check common jobs tests bench deploy
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	$(BIN)/numpydoc lint $$(find common -name "*.py" | sort)

# Generated reference docs (conf/config.schema.json, docs/CONFIG.md, the table flow in
# docs/ARCHITECTURE.md) from the config models, the table catalog and the jobs' declarations.
docs: setup
	$(BIN)/python -m deploy.gen_docs

# Headless Chromium for the report's browser test (Debian package); tests skip with a
# message when it cannot be installed.
browser:
	@command -v chromium >/dev/null || { (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: browser tests will skip"; }

# Everything that proves a claim in the docs: the default suite (unit, real data, the three-fleet
# accuracy suite) and the fault / robustness / privacy suite (tests/slow: subprocess kills,
# local-cluster executors, whole-pipeline runs) in one pytest session, so the fleet fixtures both
# use are built once.
test: setup $(TEST_JARS_STAMP) browser lint
	@$(BIN)/python -m deploy.class_archive --test || echo "test class archive not built: the test session starts without it"
	$(BIN)/python -m pytest --include-slow $(PYTEST_ARGS)

# Issue 9 benchmarks (docs/BENCHMARKS.md): 1 M / 10 M / 50 M rows vs the pandas baseline; hours.
# Quick run: make bench ARGS="--rows 300000 --visits 50000"; options: python -m bench.run_all --help
bench: setup
	$(BIN)/python -m bench.run_all $(ARGS)

mlflow-ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///lakehouse/mlflow/mlflow.db --default-artifact-root lakehouse/mlflow/artifacts --host 127.0.0.1 --port 5000

# Online scoring of a registered model over the local tracking store (docs/MODELS.md section 7).
# The venv's bin goes on PATH: mlflow starts uvicorn through a shell.
MODEL ?= evfa_energy_per_km
PORT ?= 5001
serve-model: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/lakehouse/mlflow/mlflow.db} \
		$(BIN)/mlflow models serve -m "models:/$(MODEL)@champion" --env-manager local -h 127.0.0.1 -p $(PORT) --workers 1

clean-data:
	rm -rf lakehouse lakehouse-payd reports spark-warehouse metastore_db derby.log

# ---- deploy to AWS (docs/DEPLOY.md) ----------------------------------------------------------
.PHONY: deploy-tools iac-check
JOB ?= pipeline
CHECKOV_STAMP := .venv-checkov/.installed
HCLFMT_STAMP := .tools/hclfmt/.installed
HCL_TOOLS_VERSION := 0.21.0

package: setup
	bin/fetch-jars --cluster
	bin/package $(PACKAGE_ARGS)

submit-emr: setup
	$(BIN)/python -m deploy.submit emr-serverless --job $(JOB) --args "$(ARGS)" $(SUBMIT_ARGS)

submit-glue: setup
	$(BIN)/python -m deploy.submit glue --job $(JOB) --args "$(ARGS)" $(SUBMIT_ARGS)

# checkov's pins conflict with MLflow's, so it gets its own venv (tests/test_deploy_iac.py runs this).
$(CHECKOV_STAMP): requirements-checkov.txt constraints-checkov.txt
	test -x .venv-checkov/bin/python || $(PY) -m venv .venv-checkov
	.venv-checkov/bin/pip install -q --upgrade pip
	.venv-checkov/bin/pip install -q -r requirements-checkov.txt -c constraints-checkov.txt
	touch $@

# hclwrite.Format (what `terraform fmt` applies) from npm, for hosts without a terraform binary.
$(HCLFMT_STAMP):
	mkdir -p .tools/hclfmt
	npm install --prefix .tools/hclfmt --no-save --no-audit --no-fund --loglevel=error @cdktf/hcl-tools@$(HCL_TOOLS_VERSION)
	touch $@

deploy-tools: $(CHECKOV_STAMP) $(HCLFMT_STAMP)

iac-check: deploy-tools
	.venv-checkov/bin/checkov -d terraform --framework terraform --quiet --compact --skip-download
	bin/tf-fmt --check

# The exact, hashed, universal lock (Linux and macOS markers) that setup installs with
# --require-hashes. Existing pins are kept; `make lock UPGRADE=pkg` moves one package.
lock: setup
	$(BIN)/uv pip compile requirements-dev.txt --generate-hashes --universal --python-version 3.11 -o requirements.lock $(if $(UPGRADE),--upgrade-package $(UPGRADE))
