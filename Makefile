# The two commands of the README: `make demo` and `make test`.
#
# Set-up needs only python3 and make. uv (pinned below) is installed into a small
# bootstrap environment with pip when it is not there yet; uv then creates .venv and
# installs exactly the pinned, hashed versions of requirements/*.txt (the lock files,
# made by `make lock`): `make demo` the runtime dependencies only, `make test` the
# test and development ones too. Each step runs again only when its inputs change.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
BOOT := .uv-bootstrap
UV := $(BOOT)/bin/uv
# Use the machine's Python, never a downloaded one.
export UV_PYTHON_DOWNLOADS := never
export VIRTUAL_ENV := $(abspath $(VENV))

.PHONY: demo test lint typecheck pytest check bench lock clean

$(UV):
	@echo "setup: installing uv $(UV_VERSION) into $(BOOT)"
	@$(PYTHON) -m venv $(BOOT)
	@$(BOOT)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(BIN)/python: | $(UV)
	@$(UV) venv --quiet --python $(PYTHON) $(VENV)

# Runtime dependencies and carbonlake itself (editable).
$(VENV)/.runtime-stamp: requirements/runtime.txt pyproject.toml | $(BIN)/python
	@echo "setup: runtime dependencies (requirements/runtime.txt)"
	@$(UV) pip install --quiet --compile-bytecode --require-hashes -r requirements/runtime.txt
	@$(UV) pip install --quiet --no-deps -e .
	@# Compiled bytecode: with PYTHONDONTWRITEBYTECODE set, every command would compile
	@# its imports again (carbonlake --version 1.1-1.4 s without, 0.5 s with).
	@$(BIN)/python -m compileall -q src/carbonlake >/dev/null
	@touch $@

# Everything `make test` needs: every extra and the dev group.
$(VENV)/.dev-stamp: requirements/dev.txt $(VENV)/.runtime-stamp
	@echo "setup: test and development dependencies (requirements/dev.txt)"
	@$(UV) pip install --quiet --compile-bytecode --require-hashes -r requirements/dev.txt
	@touch $@

demo: $(VENV)/.runtime-stamp
	$(BIN)/carbonlake demo

lint: $(VENV)/.dev-stamp
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

typecheck: $(VENV)/.dev-stamp
	$(BIN)/mypy

# pytest exits 5 when it collects no test: that means the suite is broken, say so.
pytest: $(VENV)/.dev-stamp
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests (exit 5); check tests/ and PYTEST_ARGS" >&2; fi; \
	exit $$rc

test: lint typecheck pytest

check: test

# Re-pin requirements/*.txt from pyproject.toml (after changing a dependency).
# The runtime lock is constrained by the dev lock, so both pin the same versions.
LOCK_ARGS := --generate-hashes --universal --python-version 3.11 --no-header --quiet
lock: | $(UV)
	$(UV) pip compile pyproject.toml --all-extras --group dev $(LOCK_ARGS) -o requirements/dev.txt
	$(UV) pip compile pyproject.toml -c requirements/dev.txt $(LOCK_ARGS) -o requirements/runtime.txt

# Throughput and memory against the per-record baseline (docs/performance.md); not a test.
# BENCH_SIZES=10k,1m,10m make bench; BENCH_ARGS="--baseline-rows 1000000" for more options.
BENCH_SIZES ?= 10k,1m
BENCH_OUT ?= bench-results
bench: $(VENV)/.dev-stamp
	$(BIN)/python -m benchmarks --sizes $(BENCH_SIZES) --out $(BENCH_OUT) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(BOOT) .pytest_cache .mypy_cache .ruff_cache
