# `make run` and `make test` work on a fresh machine: they build .venv from the project's files.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check lint typecheck unit integration e2e bench bench-peers bench-serving clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/lepton up

test: check
	$(BIN)/pytest tests

check: lint typecheck

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP)
	$(BIN)/pytest tests/integration

e2e: $(STAMP)
	$(BIN)/pytest tests/e2e

bench: $(STAMP)
	$(BIN)/python benchmarks/startup.py
	$(BIN)/python benchmarks/serving.py --quick

# The serving peers (LitServe, BentoML, Ray Serve) clash with the main pins, so they live in a
# venv of their own; `make test` never installs them.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): pyproject.toml constraints-bench.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	echo '*' > $(BENCH_VENV)/.gitignore
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet -c constraints-bench.txt -e '.[bench]'
	touch $(BENCH_STAMP)

bench-peers: $(BENCH_STAMP)

bench-serving: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python benchmarks/serving.py

clean:
	rm -rf $(VENV) build src/*.egg-info
