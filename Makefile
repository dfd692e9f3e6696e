# sshmint: every target sets up what it needs (virtualenv, packages, PostgreSQL for tests).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: serve test lint bench fuzz venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

serve: $(STAMP)
	@echo "sshmint: state in ./sshmint-data. Create the first user from another terminal:"
	@echo "  $(BIN)/sshmint admin add-user you@example.com --key-file ~/.ssh/id_ed25519.pub"
	@echo "then: ssh -p 2222 localhost whoami"
	$(BIN)/sshmint serve --data-dir ./sshmint-data

lint: $(STAMP)
	$(BIN)/ruff check src tests bench fuzz
	$(BIN)/ruff format --check src tests bench fuzz
	$(BIN)/mypy

test: $(STAMP) lint
	bash scripts/ensure-test-tools
	$(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadfile

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH)

# The long run of the fuzz and differential harness (make test runs a short one); it
# stops by itself. FUZZ="--seed N --tokens N --max-seconds S --workers W" to change it.
fuzz: $(STAMP)
	$(BIN)/python -m fuzz $(FUZZ)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
