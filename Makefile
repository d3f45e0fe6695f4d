# Fresh machine: `make serve` (set up, build the index, serve) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Extra pip arguments for torch, e.g. an index that serves CPU-only wheels (see README).
TORCH_PIP_ARGS ?=
export HF_HUB_OFFLINE := 1

.PHONY: setup setup-bench serve test bench bench-quality

$(BIN)/footnote: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0 $(TORCH_PIP_ARGS)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

setup: $(BIN)/footnote

serve: setup
	$(BIN)/footnote serve

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python -m bench.latency

setup-bench: setup
	$(BIN)/pip install --quiet -e '.[test,bench]'

bench-quality: setup-bench
	$(BIN)/python -m bench.quality --dataset scifact
	$(BIN)/python -m bench.quality --dataset squad
