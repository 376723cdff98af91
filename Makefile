# katib-surrogate: every target sets up what it needs in .venv (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
CONSTRAINTS := requirements/constraints.txt
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help venv test test-fast lint proto serve demo bench bench-service manifests images e2e clean lock

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-16s %s\n", $$1, $$2}'

# The venv is rebuilt when the lock or the project metadata change. torch and torchvision are
# installed first in their own pip call so that nothing else resolves a different torch build.
$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip==25.3
	$(PIP) install -q $$(grep -E '^(torch|torchvision)==' $(CONSTRAINTS))
	$(PIP) install -q -c $(CONSTRAINTS) -e '.[trainer,client,dev]'
	$(PIP) check
	@touch $(STAMP)

venv: $(STAMP) ## create or refresh .venv from requirements/constraints.txt

lock: ## re-pin requirements/constraints.txt from the current .venv (after changing pyproject.toml)
	$(PIP) freeze --exclude-editable | grep -v '^-e ' | LC_ALL=C sort > $(CONSTRAINTS)

test: $(STAMP) ## the whole test suite (lint + pytest); fails when no test ran
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest -q -p no:cacheprovider

test-fast: $(STAMP) ## pytest without the tests marked slow
	$(PY) -m pytest -q -p no:cacheprovider -m 'not slow and not reliability'

lint: $(STAMP) ## ruff (code), import contracts (.importlinter), hadolint (Dockerfiles)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-logo
	@for f in $$(git ls-files '*Dockerfile' 2>/dev/null); do echo "hadolint $$f"; $(VENV)/bin/hadolint $$f || exit 1; done

proto: $(STAMP) ## regenerate the Python gRPC modules from suggestion_service/proto/api.proto
	$(PY) -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. suggestion_service/proto/api.proto

serve: $(STAMP) ## run the suggestion service on :6789 (metrics on :8000)
	$(PY) -m suggestion_service --port 6789 --metrics-port 8000

bench-service: $(STAMP) ## GetSuggestions latency / RSS benchmark -> docs/benchmarks.md
	$(PY) bench/service_latency.py --write docs/benchmarks.md

clean: ## remove caches and local run outputs (keeps .venv)
	rm -rf .pytest_cache .ruff_cache .import_linter_cache build *.egg-info runs/tmp

# Each area adds its own targets (trainer, manifests, client/demo, benchmarks).
-include $(sort $(wildcard mk/*.mk))
