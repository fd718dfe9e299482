# `make help` lists the targets. Everything runs from the project's own .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install train test test-all test-repeat lint format bench gpu-bundle clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv and install fmlab editable with the dev tools and the hf extra (idempotent)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,hf]'
# fmlab ships its own hydra/sweeper=optuna: the old plugin, in a .venv made before, would shadow it
	$(BIN)/python -m pip uninstall -q -y hydra-optuna-sweeper 2>/dev/null || true
	touch $(STAMP)

train: install ## run the default experiment (the classic CIFAR-10 ConvNet)
	$(BIN)/fmlab-train experiment=seed_convnet

# Two workers, a test file each at a time, one torch thread each: two torch processes with two
# threads each on two cores run several times slower than with one each (STACK-FACTS).
XDIST := -n 2 --dist loadfile
test: install ## the fast test suite
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q $(XDIST) --durations=15

test-all: install ## every test, the slow ones too (one at a time: DDP and SLURM take the cores)
	$(BIN)/python -m pytest -q -m "slow or not slow"

SEEDS ?= 0,1,2,3,4,5,6,7,8,9
THREADS ?= 1,2
test-repeat: install ## the real-data learning tests over SEEDS x THREADS, with their spread
	$(BIN)/python -m pytest -q -m learning --learning-seeds=$(SEEDS) --learning-threads=$(THREADS)

lint: install ## ruff lint and format check; imports only downward, no circles (pyproject.toml)
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/lint-imports

format: install ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix src tests scripts
	$(BIN)/ruff format src tests scripts

bench: install ## benchmark seed_convnet against the course loop and a plain loop
	$(BIN)/python scripts/bench_seed.py

gpu-bundle: install ## fill .gpu/ for scripts/gpu_check.sh on an accelerator machine (README)
	PYTHON=$(BIN)/python scripts/gpu_bundle.sh .gpu

clean: ## remove run folders and caches (keeps .venv and data/)
	rm -rf logs outputs multirun .pytest_cache .ruff_cache wandb
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
