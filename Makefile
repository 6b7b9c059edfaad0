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

.PHONY: help install run test lint typecheck test-sqlite test-postgres test-browser browser-deps browser-after-deps fuzz openapi config-docs format clean

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

# Everything at once: each pass alone leaves about a third of the CPU idle while its processes wait on each
# other (gateways starting, sandbox tasks running, leases lapsing), and the slowest tests of both passes
# (kill -9 restarts, multi-process scale-out) start first, side by side, instead of one pass's tail after
# the other's. mypy (≈ 35 s on one core from a cold cache) and the chromium install (`browser-deps`,
# mostly download, ~40 s on a CI machine where it is missing; the browser test follows it) fill the rest.
# --output-sync keeps each target's output together (shown when it ends).
test: install ## Everything CI runs: lint, types, the suite on SQLite, its database tests on a throwaway Postgres, the browser test
	$(MAKE) --no-print-directory -j5 --output-sync=target lint typecheck test-sqlite test-postgres browser-after-deps

browser-after-deps: browser-deps
	@$(MAKE) --no-print-directory test-browser

lint: install ## ruff check + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## ruff fix + format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: install ## mypy --strict over app/
	$(BIN)/mypy

test-sqlite: install ## The suite on SQLite (browser tests apart: `test-browser`)
	$(BIN)/pytest $(XDIST) -m "not browser" $(PYTEST_ARGS)

test-postgres: install ## The database tests on a throwaway Postgres (started and removed by scripts/with-postgres.sh)
	scripts/with-postgres.sh $(BIN)/pytest $(XDIST) -m "not browser" $(PYTEST_ARGS)

test-browser: install ## The console in headless chromium (tests/browser; skipped without chromium, failed under CI=true)
	$(BIN)/pytest -n 0 -m browser tests/browser $(PYTEST_ARGS)

# Debian's chromium and its chromedriver (the same version) for tests/browser, installed only when one is
# missing. apt's output goes to a log, shown only if the install fails (it runs beside other targets).
# Without recommends: 20 packages instead of 131 (apt's recommends bring samba, avahi, cups, a perl and a
# systemd upgrade — minutes of unpacking and triggers on a CI machine, all beside the suite).
BROWSER_LOG ?= .cache/browser-deps.log
browser-deps: ## Install chromium + chromium-driver with apt when /usr/bin/chromium or chromedriver is missing
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi; \
	mkdir -p $(dir $(BROWSER_LOG)); \
	echo "browser-deps: installing chromium and chromium-driver (log: $(BROWSER_LOG))"; \
	if { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver; } \
		>$(BROWSER_LOG) 2>&1; then echo "browser-deps: $$(/usr/bin/chromium --version 2>/dev/null)"; \
	else cat $(BROWSER_LOG); echo "browser-deps: apt-get install failed"; exit 1; fi

fuzz: install ## Schemathesis against the live gateway alone (part of test-sqlite; about 20 s)
	$(BIN)/pytest tests/fuzz $(PYTEST_ARGS)

openapi: install ## Write openapi/openapi.json from the app (`wan-gateway openapi` alone prints it)
	$(BIN)/wan-gateway openapi --output openapi/openapi.json

config-docs: install ## Write docs/CONFIGURATION.md from the settings
	$(BIN)/python -m app.config_docs > docs/CONFIGURATION.md

clean: ## Remove caches, local data and the venv
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis data output .cache $(VERCEL)/node_modules
