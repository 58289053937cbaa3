# alt_lightning developer commands. `make help` lists them.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
ALT := $(VENV)/bin/alt
DEMO_DATA ?= demo_data
export HF_HUB_OFFLINE ?= 1
export PYTHONUNBUFFERED := 1

.DEFAULT_GOAL := help
.PHONY: help install test test-slow lint format demo clean

help: ## Show the available commands
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $@

install: $(VENV)/.installed ## Create .venv if missing and install the package with dev tools

test: install ## Run the default test suite (no slow or GPU tests)
	$(PY) -m pytest -q

test-slow: install ## Run the slow tests (CI runs them)
	$(PY) -m pytest -q -m slow

lint: install ## ruff check, format check and the type checker (mypy on src/, settings in pyproject.toml)
	$(VENV)/bin/ruff check src tests notebooks
	$(VENV)/bin/ruff format --check src tests
	$(PY) -m mypy

format: install ## Apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix src tests notebooks
	$(VENV)/bin/ruff format src tests

demo: install ## Write a synthetic video dataset, fit ALT (tiny) on it, test the best checkpoint
	rm -rf $(DEMO_DATA) runs/demo
	$(PY) -m alt_lightning.data.synthetic $(DEMO_DATA) --seed 0
	$(ALT) fit --config configs/demo.yaml
	$(ALT) test --config configs/demo.yaml --ckpt_path runs/demo/latest/checkpoints/best.ckpt

clean: ## Remove demo data, runs and caches (not the venv)
	rm -rf $(DEMO_DATA) runs .pytest_cache .ruff_cache
