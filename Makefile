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

install: .venv/.synced ## install the project and the local cloud (LocalStack, Lambda runtime)
	@$(PY) infra/local_cloud.py install

browser: ## install Chromium for the browser tests (Debian/Ubuntu packages)
	@bash infra/install-browser.sh

demo: install ## run the whole local stack: cloud, deploy, train, serve, form
	@$(PY) infra/demo.py up

down: ## stop everything `make demo` started and delete the local state
	@if [ -x $(PY) ]; then $(PY) infra/demo.py down; else echo "nothing to stop"; fi

train: install ## run the training job against the local stack (ARGS="--set dataset=digits")
	@$(PY) infra/demo.py train $(ARGS)

test: install browser ## run every test (unit, LocalStack integration, browser); starts its own LocalStack
	@$(PY) -m pytest $(ARGS)

lint: install ## ruff and the template checks
	@$(PY) -m ruff check .
	@.venv/bin/cfn-lint template.yaml

bench: install ## serving benchmark: cold start, warm latency, package size, memory (prints JSON)
	@$(PY) benchmarks/serving_benchmark.py

.PHONY: help install browser demo down train test lint bench
