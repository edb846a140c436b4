# Two entry points for a new user: `make up` and `make test`. Everything they need is
# installed into .venv by these rules, idempotently: the stamp files make a second run a no-op
# until pyproject.toml changes, and pip's own cache makes a reinstall fast.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: up test lint unit clean-venv

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Runtime dependencies, for `make up`.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

# Runtime + test/lint dependencies, for `make test`.
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed-run

up: $(VENV)/.installed-run
	$(BIN)/heteroflow up $(ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check bridge gateway agent-plugin tests
	$(BIN)/mypy

test: lint
	$(BIN)/pytest $(ARGS)

clean-venv:
	rm -rf $(VENV)
