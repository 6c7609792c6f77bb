# Two entry points for a fresh machine: `make report` and `make test`.
# Everything installs into .venv; torch is pinned to the CPU build on local disk first,
# so the project's range (torch>=2.4,<3) never pulls a multi-GB CUDA build.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  := torch==2.13.0

.PHONY: install report test lint bench bench-timing clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The plots extra (matplotlib) makes the chart tests run for real; its absence is simulated there.
# The train extra (scikit-learn) gives `headaudit train` its bundled digits.
install: $(BIN)/python
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[test,lint,plots,train]'

report: install
	$(BIN)/headaudit report > REPORT.md
	@echo "wrote REPORT.md"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Spread over the cores with pytest-xdist: every test seeds itself, so verdicts match a serial run.
# Bytecode is written (base images set PYTHONDONTWRITEBYTECODE=1): without it every pytest
# process, the workers and the plugin tests' runs, rewrote the asserts of its plugins' modules
# (hypothesis alone has 75) and compiled the project from source, about 4 s each. The
# __pycache__ folders are git-ignored; the cache's source hash leaves them out.
test: lint
	env -u PYTHONDONTWRITEBYTECODE HYPOTHESIS_PROFILE=ci $(BIN)/python -m pytest -n auto --durations=25

bench: install
	$(BIN)/headaudit bench

# Timing runs of the whole benchmark grid (no xdist: it disables pytest-benchmark).
bench-timing: install
	HEADAUDIT_BENCH_GRID=full $(BIN)/python -m pytest benchmarks --benchmark-enable --benchmark-only \
		--benchmark-json=.benchmarks/bench.json

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
