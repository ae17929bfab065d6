# Everything installs itself: uv (through pip when missing), then the locked environment.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
HOST ?= 127.0.0.1
PORT ?= 8000

# llama-cpp-python is built from source on first install. Portable AVX2 build without the
# parts the service never uses; native builds have crashed in llama_decode on some CPUs.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
	-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_CURL=OFF
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2

.PHONY: install run test test-loaded lint typecheck pytest openapi bench load profile browser-deps

install: .venv/.installed

.venv/.installed: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || { echo "uv not found: installing it with pip"; \
		$(PYTHON) -m pip install --quiet uv; }
	@if [ ! -d .venv ] || ! .venv/bin/python -c "import llama_cpp" >/dev/null 2>&1; then \
		echo "First install: compiling llama.cpp for the embedded language model" \
		     "(about 10 minutes on 2 cores; cached afterwards)."; fi
	$(UV) sync --locked
	@touch $@

run: install  ## serve the API on http://$(HOST):$(PORT) with the configured engines
	$(UV) run --locked voice-orchestrator serve --host $(HOST) --port $(PORT)

lint: install
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .

typecheck: install
	$(UV) run --locked mypy

pytest: install
	$(UV) run --locked pytest

test: lint typecheck pytest

test-loaded: install  ## make test with two busy CPU loops alongside for the whole run
	@$(PYTHON) -c 'while True: pass' & one=$$!; \
	$(PYTHON) -c 'while True: pass' & two=$$!; \
	trap 'kill $$one $$two 2>/dev/null' EXIT INT TERM; \
	echo "make test with two busy CPU loops (pids $$one $$two) running alongside"; \
	$(MAKE) test

browser-deps:  ## Debian's Chromium for the browser test (tests/browser skip without it)
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "Installing Debian's chromium for the browser test"; \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			$$sudo apt-get install -y -qq --no-install-recommends chromium; fi

openapi: install  ## regenerate specs/openapi.yaml from the app
	$(UV) run --locked python -m voice_orchestrator.openapi specs/openapi.yaml

bench: install  ## orchestration overhead and first audio vs the physical limit -> bench/results.json
	$(UV) run --locked python -m bench.run

load: install  ## 4x the dialogue slots for 60 s on loopback: only 200/429, slots freed, RSS stable
	$(UV) run --locked python -m bench.load --seconds 60

profile: install  ## where a request's CPU goes: py-spy over the service under load, by package
	$(UV) run --locked python -m bench.profile --providers instant
	$(UV) run --locked python -m bench.profile --providers openai
