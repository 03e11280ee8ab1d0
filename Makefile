# Two commands on a fresh machine: `make demo` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: demo test lint typecheck contracts system-deps clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

# The checks call `make .venv`.
$(VENV): $(STAMP)

contracts/node_modules/.installed: contracts/package.json contracts/package-lock.json
	cd contracts && npm ci --no-audit --no-fund --loglevel=error
	touch $@

system-deps:
	@deploy/dev-deps.sh

demo: $(STAMP) contracts/node_modules/.installed
	$(BIN)/quartier demo

test: $(STAMP) contracts/node_modules/.installed system-deps
	$(BIN)/ruff check .
	$(BIN)/mypy quartier gateway community firmware_sim bench
	$(BIN)/pytest -q -p no:cacheprovider

contracts: contracts/node_modules/.installed
	cd contracts && npm run --silent build

clean:
	rm -rf $(VENV) contracts/node_modules
