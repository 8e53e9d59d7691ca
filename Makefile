# imgforge: developer and CI entry points. `make demo` and `make test` work on a fresh
# Debian machine: they install what is missing and start a Docker engine if none answers.
PYTHON ?= python3
export IMGFORGE_NETWORK ?= host

.PHONY: install engine standin setup demo test test-unit test-integration lint bench clean

install:
	$(PYTHON) -m pip install -q -e '.[test,dev]'

engine:
	bash scripts/ensure-engine.sh

standin: install engine
	$(PYTHON) scripts/ngc_standin.py

setup: install engine standin

demo: setup
	imgforge build recipes/myproj.toml

test: setup
	$(PYTHON) -m pytest -ra

test-unit: install
	$(PYTHON) -m pytest -q tests/unit tests/golden

test-integration: setup
	$(PYTHON) -m pytest -ra -m integration tests

bench: setup
	$(PYTHON) bench/run.py

lint: install
	ruff check imgforge tests scripts
	mypy

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
