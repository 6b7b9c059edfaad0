# wan-gateway — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# The suite starts hundreds of Python processes (gateways, workers, CLI commands): with bytecode caching
# off (some images export PYTHONDONTWRITEBYTECODE=1) each one compiles the gateway and its libraries from
# source again, 6 s instead of 2.4 s per start. The caches go to __pycache__/, which git ignores.
unexport PYTHONDONTWRITEBYTECODE
# The suite runs on every core (pytest-xdist); modules marked xdist_group stay on one worker.
XDIST ?= -n auto --dist loadgroup

.DEFAULT_GOAL := help

.PHONY: help install run test lint typecheck test-sqlite test-postgres fuzz openapi config-docs format clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@# uv resolves and installs the same pins as pip, in seconds rather than minutes (a fresh clone's CI).
	$(BIN)/python -m pip install -q uv==0.13.8
	$(BIN)/uv pip install -q --python $(BIN)/python -e ".[dev]"
	touch $@

# The Vercel AI SDK (`ai` + `@ai-sdk/alibaba`, pinned by its package-lock.json) for
# tests/compat/test_vercel_ai_sdk.py: about 5 s from a cold npm cache. Without npm it is left out (the test
# then skips, and fails under CI=true).
VERCEL := tests/compat/vercel
$(VERCEL)/node_modules/.installed: $(VERCEL)/package-lock.json $(VERCEL)/package.json
	@if command -v npm >/dev/null; then \
		npm ci --silent --no-audit --no-fund --prefix $(VERCEL) && touch $@; \
	else echo "npm not found: the Vercel AI SDK test will not run (Node 20+ needed)"; fi

install: $(BIN)/.installed $(VERCEL)/node_modules/.installed ## Create .venv and install the gateway with its dev tools (and the Vercel AI SDK for its test)

# `make run PORT=8080 HOST=0.0.0.0` listens elsewhere.
HOST ?= 127.0.0.1
PORT ?= 8000

run: install ## Serve on http://127.0.0.1:8000, or PORT=/HOST= (sandbox upstream, SQLite, local files; migrations applied)
	$(BIN)/wan-gateway serve --host $(HOST) --port $(PORT)

# mypy (≈ 35 s on one core from a cold cache) runs beside the SQLite pass, whose processes leave a third of
# the CPU idle while they wait on each other; the Postgres pass follows.
test: install ## Everything CI runs: lint, types, the suite on SQLite, its database tests on a throwaway Postgres
	$(MAKE) --no-print-directory -j2 lint typecheck test-sqlite
	$(MAKE) --no-print-directory test-postgres

lint: install ## ruff check + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## ruff fix + format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: install ## mypy --strict over app/
	$(BIN)/mypy

test-sqlite: install ## The suite on SQLite
	$(BIN)/pytest $(XDIST) $(PYTEST_ARGS)

test-postgres: install ## The database tests on a throwaway Postgres (started and removed by scripts/with-postgres.sh)
	scripts/with-postgres.sh $(BIN)/pytest $(XDIST) $(PYTEST_ARGS)

fuzz: install ## Schemathesis against the live gateway alone (part of test-sqlite; about 20 s)
	$(BIN)/pytest tests/fuzz $(PYTEST_ARGS)

openapi: install ## Write openapi/openapi.json from the app (`wan-gateway openapi` alone prints it)
	$(BIN)/wan-gateway openapi --output openapi/openapi.json

config-docs: install ## Write docs/CONFIGURATION.md from the settings
	$(BIN)/python -m app.config_docs > docs/CONFIGURATION.md

clean: ## Remove caches, local data and the venv
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis data output .cache $(VERCEL)/node_modules
