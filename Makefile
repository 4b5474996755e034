# The README's two commands: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint typecheck pytest bench clean arch-tests

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/psaspm run examples/demo/demo_manifest_list.yaml --ns examples/demo/ns_app.py --stats
	$(BIN)/psaspm compare examples/demo/demo_manifest_list.yaml --ns examples/demo/ns_app.py \
	    -D CRYPTO_STACK_SIZE=0x1800

lint: $(STAMP)
	$(BIN)/ruff check src tests examples benchmarks tools arch_tests
	$(BIN)/ruff format --check src tests examples benchmarks tools arch_tests

# src and tests (pyproject); examples and benchmarks apart, as their folders
# hold same-named modules (every example has an ns_app.py).
typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy examples
	$(BIN)/mypy benchmarks

check: lint typecheck

pytest: $(STAMP)
	$(BIN)/python -m pytest

test: check pytest

# Arm's psa-arch-tests FF IPC suite on psaspm (contract section 11): both builds,
# IPC levels 1-3.  PSASPM_ARCH_TESTS=21 (or 1,21,44) runs only those tests.
arch-tests: $(STAMP)
	@for build in "" --stateless; do for level in 1 2 3; do \
	    $(BIN)/python arch_tests/run.py $$build --isolation $$level || exit 1; \
	done; done

bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench

clean:
	rm -rf $(VENV) build dist src/*.egg-info .mypy_cache .pytest_cache .ruff_cache
