# imgforge: developer and CI entry points. `make demo` and `make test` work on a fresh
# Debian machine that has python3, git and make: they create the project virtual
# environment .venv/ (never pip into the system Python), install what the OS lacks with
# apt only when it is missing, and start a Docker engine if none answers.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export IMGFORGE_NETWORK ?= host

.PHONY: venv install engine standin setup demo test test-unit test-integration lint dist bench clean

$(PY):
	bash scripts/ensure-venv.sh $(PYTHON) $(VENV)

venv: $(PY)

install: $(PY)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,dev]'

engine:
	bash scripts/ensure-engine.sh

standin: install engine
	$(PY) scripts/ngc_standin.py

setup: install engine standin

demo: setup
	$(VENV)/bin/imgforge build recipes/myproj.toml

test: setup
	$(PY) -m pytest -ra

test-unit: install
	$(PY) -m pytest -q tests/unit tests/golden

test-integration: setup
	$(PY) -m pytest -ra -m integration tests

# The release check: sdist and wheel build, and their metadata passes twine.
dist: install
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(PY) -m twine check --strict dist/*

lint: install dist
	$(VENV)/bin/ruff check imgforge tests scripts bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# The benchmarks time `imgforge` as a user types it: the venv's, first on PATH.
bench: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) bench/run.py

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache
