# The two commands of the README: `make demo` and `make test`. Each creates
# .venv and installs what is missing, so both work on a fresh machine.
#
# Dependencies come from requirements/lock.txt only: every runtime and dev
# package pinned with its hashes (`make lock` regenerates it after a change
# to pyproject.toml's dependencies). The project itself is installed
# editable, without dependencies and with the locked setuptools.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements/lock.txt
# The lock resolves for every platform from the oldest Python supported.
LOCK_FLAGS := --extra dev --generate-hashes --universal --python-version 3.11 \
	--custom-compile-command 'make lock'

.PHONY: demo test unit fuzz lint format typecheck check lock protos linkage-model bench clean

# Each step says what it does: the first install takes about 30 s, and pip
# (not --quiet) shows each package as it collects and installs it.
$(STAMP): $(LOCK) pyproject.toml
	@test -x $(BIN)/python || { echo "creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "installing $$(grep -c '^[a-z0-9]' $(LOCK)) locked packages into $(VENV) (about 30 s the first time)"
	$(BIN)/python -m pip install --require-hashes -r $(LOCK)
	@echo "installing accord itself (editable)"
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@# A dependency added to pyproject.toml but not locked fails here: run `make lock`.
	$(BIN)/python -m pip check
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/accord demo --serve

# The whole suite, with coverage of the production packages (pyproject.toml's
# [tool.coverage]: it fails under the floor).
# In a random order (pytest-randomly), whose seed is printed first:
# `make test SEED=N` repeats that order.
ifndef SEED
SEED := $(shell od -An -N4 -tu4 /dev/urandom | tr -d ' ')
endif
test: $(STAMP)
	@echo "tests in random order: make test SEED=$(SEED) repeats it"
	$(BIN)/python -m pytest -q -p randomly --randomly-seed=$(SEED) --cov --cov-report=term:skip-covered --durations=30

# Unit tests only (no processes, no databases): seconds.
unit: $(STAMP)
	$(BIN)/python -m pytest tests --ignore=tests/integration -q

# The fuzz suite alone (part of `make test` too, bounded there). A longer hunt,
# with random rather than the fixed CI inputs: ACCORD_FUZZ_EXAMPLES=20000 make fuzz
FUZZ_EXAMPLES ?= $(ACCORD_FUZZ_EXAMPLES)
fuzz: $(STAMP)
	ACCORD_FUZZ_EXAMPLES=$(or $(FUZZ_EXAMPLES),1000) ACCORD_FUZZ_RANDOM=1 \
		$(BIN)/python -m pytest -q -m fuzz -p no:randomly --timeout=0 --hypothesis-show-statistics

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

# Not through $(STAMP): it must work while the lock lacks a new dependency.
lock:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml requirements/build.in $(LOCK_FLAGS) -o $(LOCK)

protos: $(STAMP)
	$(BIN)/python -m accord.protogen

# The history's linkage model (docs/history.md), estimated with Splink on the
# synthetic data; the thresholds are in deploy/linkage.yaml.
linkage-model: $(STAMP)
	$(BIN)/python -m app.linkage_model

clean:
	rm -rf .accord .pytest_cache .mypy_cache .ruff_cache .coverage
