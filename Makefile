# The two commands of the README: `make demo` and `make test`.
# Each creates the virtual environment in .venv when it is missing or stale.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck pytest check bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/carbonlake demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

typecheck: $(STAMP)
	$(BIN)/mypy

# pytest exits 5 when it collects no test: that means the suite is broken, say so.
pytest: $(STAMP)
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests (exit 5); check tests/ and PYTEST_ARGS" >&2; fi; \
	exit $$rc

test: lint typecheck pytest

check: test

# Throughput and memory against the per-record baseline (docs/performance.md); not a test.
# BENCH_SIZES=10k,1m,10m make bench; BENCH_ARGS="--baseline-rows 1000000" for more options.
BENCH_SIZES ?= 10k,1m
BENCH_OUT ?= bench-results
bench: $(STAMP)
	$(BIN)/python -m benchmarks --sizes $(BENCH_SIZES) --out $(BENCH_OUT) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
