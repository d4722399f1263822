# Set-up, main job and tests. `make run` and `make test` each create .venv and install the pinned
# dependencies on first use, so a fresh clone needs nothing else.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The LiteRT conversion environment: litert-torch's dependencies clash with .venv's pins, so it has its own.
LITERT_VENV ?= .venv-litert
# Extra Hydra overrides for `make run`, e.g. make run ARGS="quant=palettize_4bit"
ARGS ?=
# Extra pytest arguments for `make test`, e.g. make test PYTEST_ARGS="-k store"
PYTEST_ARGS ?=
# Targets config (conf/targets/<name>.yaml) of `make dvc-compile`, e.g. make dvc-compile TARGETS=ci
TARGETS ?= default

export HF_HUB_OFFLINE := 1
export DVC_NO_ANALYTICS := 1
export OPENVINO_TELEMETRY_ENABLED := 0
# DVC keeps its site cache (hash and index databases) in /var/tmp/dvc unless told otherwise.
export DVC_SITE_CACHE_DIR := $(CURDIR)/.dvc/tmp/site_cache
# DVC runs each stage's `python -m sarvam_pipeline.dvc ...` through the shell, so the venv comes first.
DVC := PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc

.PHONY: setup setup-litert run test clean dvc-compile dvc-check dvc-repro dvc-ci

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# The filter drops pip's notes about local index folders this machine's pip config names.
	$(BIN)/pip install --quiet -e '.[test,sweep,cluster,qnn]' 2>&1 | { grep -v '^WARNING: Location' || true; }
	touch $@

setup: $(BIN)/.installed

# The converter's interpreter (stages/litert_convert.py runs $(LITERT_VENV)/bin/python unless SARVAM_LITERT_PYTHON
# names another). The worker runs from the repository root, so the project itself is not installed there.
$(LITERT_VENV)/.installed: envs/litert.txt
	rm -rf $(LITERT_VENV)
	$(PYTHON) -m venv $(LITERT_VENV)
	$(LITERT_VENV)/bin/pip install --quiet -r envs/litert.txt 2>&1 | { grep -v '^WARNING: Location' || true; }
	touch $@

setup-litert: $(LITERT_VENV)/.installed

run: setup
	$(BIN)/python -m sarvam_pipeline chipset=m3 runtime=coreml $(ARGS)

# The LiteRT tests skip, with the reason, when .venv-litert could not be created (no package index).
test: setup
	$(MAKE) setup-litert || echo "warning: make setup-litert failed, so tests/test_litert.py will skip"
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Regenerate dvc.yaml and params.yaml of one targets config. The LiteRT environment's package versions enter
# the keys of LiteRT conversion nodes, so the compile and the build need it.
dvc-compile: setup setup-litert
	$(BIN)/python -m sarvam_pipeline.dvc compile --targets $(TARGETS)

# Fail when a committed pipeline differs from a fresh compile on this host.
dvc-check: setup setup-litert
	$(BIN)/python -m sarvam_pipeline.dvc compile --targets default --check
	$(BIN)/python -m sarvam_pipeline.dvc compile --targets ci --check

# Build the default matrix (every chipset and supported runtime) with DVC.
dvc-repro: setup setup-litert
	$(DVC) repro dvc.yaml
	$(DVC) metrics show -R metrics

# The CI matrix: regenerate it when the code or the host changed it, rebuild it, list its metrics.
dvc-ci: setup
	$(BIN)/python -m sarvam_pipeline.dvc compile --targets ci --check || \
		$(BIN)/python -m sarvam_pipeline.dvc compile --targets ci
	$(DVC) repro pipelines/ci/dvc.yaml
	$(DVC) metrics show -R pipelines/ci/metrics
	cat pipelines/ci/report/matrix.md

clean:
	rm -rf artifacts outputs multirun
