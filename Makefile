# Two commands on a fresh machine with Python 3.11:  make run  |  make test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# PostgreSQL for the second pass of the suite (unset it to run on SQLite only).
EXCHANGE_TEST_POSTGRES_URL ?=

.PHONY: run test install dev openapi bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

# The tests' independent R4 validator (Node.js packages from the npm registry; the exchange never runs them).
R4_VALIDATOR := tests/r4_validator
$(R4_VALIDATOR)/node_modules/.installed: $(R4_VALIDATOR)/package.json $(R4_VALIDATOR)/package-lock.json
	npm ci --prefix $(R4_VALIDATOR) --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.installed-dev $(R4_VALIDATOR)/node_modules/.installed

## make run: the exchange on an embedded SQLite database (./exchange.db) with demo organisations and clients
run: install
	$(BIN)/exchange serve --demo

## make test: the whole suite (SQLite; PostgreSQL too when EXCHANGE_TEST_POSTGRES_URL is set)
test: dev
	EXCHANGE_TEST_POSTGRES_URL=$(EXCHANGE_TEST_POSTGRES_URL) $(BIN)/python -m pytest

openapi: install
	$(BIN)/exchange openapi --output openapi.yaml

bench: dev
	$(BIN)/python bench/load.py

clean:
	rm -rf $(VENV) exchange.db exchange.db-wal exchange.db-shm var
