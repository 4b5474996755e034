# The README's two commands: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint typecheck pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/psaspm layout ../shared/tfm-manifests/trusted-firmware-m/tools/tfm_manifest_list.yaml \
	    --backend ipc --isolation 2 -D TFM_PARTITION_NS_AGENT_MAILBOX=1 -D TFM_PARTITION_PROTECTED_STORAGE=1 \
	    -D TFM_PARTITION_INTERNAL_TRUSTED_STORAGE=1 -D TFM_PARTITION_CRYPTO=1 -D TFM_PARTITION_PLATFORM=1 \
	    -D TFM_PARTITION_INITIAL_ATTESTATION=1 -D TFM_PARTITION_FIRMWARE_UPDATE=1

lint: $(STAMP)
	$(BIN)/ruff check src tests examples
	$(BIN)/ruff format --check src tests examples

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck

pytest: $(STAMP)
	$(BIN)/python -m pytest

test: check pytest

bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench

clean:
	rm -rf $(VENV) build dist src/*.egg-info .mypy_cache .pytest_cache .ruff_cache
