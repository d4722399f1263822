# Set-up, main job and tests. `make run` and `make test` each create .venv and install the pinned
# dependencies on first use, so a fresh clone needs nothing else.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Extra Hydra overrides for `make run`, e.g. make run ARGS="quant=palettize_4bit"
ARGS ?=
# Extra pytest arguments for `make test`, e.g. make test PYTEST_ARGS="-k store"
PYTEST_ARGS ?=

export HF_HUB_OFFLINE := 1
export DVC_NO_ANALYTICS := 1
export OPENVINO_TELEMETRY_ENABLED := 0

.PHONY: setup run test clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# The filter drops pip's notes about local index folders this machine's pip config names.
	$(BIN)/pip install --quiet -e '.[test]' 2>&1 | { grep -v '^WARNING: Location' || true; }
	touch $@

setup: $(BIN)/.installed

run: setup
	$(BIN)/python -m sarvam_pipeline chipset=m3 runtime=coreml $(ARGS)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf artifacts outputs multirun
