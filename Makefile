# Two commands on a fresh machine with Python 3.11:  make run  |  make test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# PostgreSQL for the second pass of the suite (unset it to run on SQLite only).
EXCHANGE_TEST_POSTGRES_URL ?=
# The locking tool (only `make lock` and `make lock-upgrade` use it; installing needs nothing but pip).
UV_VERSION := 0.13.9
# Every package comes from the lock files, each checked against its hash; the project itself is installed
# without dependencies, and `pip check` fails when pyproject.toml asks for something the lock lacks.
LOCKED_INSTALL = $(BIN)/pip install --quiet --require-hashes --no-deps -r
# setuptools prints a boxed note on every editable install (a UserWarning that tells us nothing): silenced.
EDITABLE_INSTALL = PYTHONWARNINGS=ignore::UserWarning $(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
STALE_LOCK = { echo "requirements/*.txt do not satisfy pyproject.toml: run make lock" >&2; exit 1; }
LOCK = $(BIN)/uv pip compile --quiet --generate-hashes --universal --python-version 3.11 --no-header

.PHONY: run test install dev lock lock-upgrade openapi bench clean catalogues screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml requirements/runtime.txt
	$(LOCKED_INSTALL) requirements/runtime.txt
	$(EDITABLE_INSTALL)
	$(BIN)/pip check >/dev/null || $(STALE_LOCK)
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml requirements/dev.txt
	$(LOCKED_INSTALL) requirements/dev.txt
	$(EDITABLE_INSTALL)
	$(BIN)/pip check >/dev/null || $(STALE_LOCK)
	touch $@ $(VENV)/.installed

# The tests' independent R4 validator (Node.js packages from the npm registry; the exchange never runs them).
R4_VALIDATOR := tests/r4_validator
$(R4_VALIDATOR)/node_modules/.installed: $(R4_VALIDATOR)/package.json $(R4_VALIDATOR)/package-lock.json
	npm ci --prefix $(R4_VALIDATOR) --no-audit --no-fund --loglevel=error
	touch $@

$(BIN)/uv: $(BIN)/python
	$(BIN)/pip install --quiet uv==$(UV_VERSION)

## make lock: re-lock after changing dependencies in pyproject.toml (keeps every other pin as it is)
lock: $(BIN)/uv
	$(LOCK) pyproject.toml requirements/build.in -o requirements/runtime.txt $(LOCK_FLAGS)
	$(LOCK) pyproject.toml requirements/build.in --extra dev -c requirements/runtime.txt -o requirements/dev.txt $(LOCK_FLAGS)

## make lock-upgrade: move every pin to the newest release pyproject.toml allows (then run make test)
lock-upgrade:
	$(MAKE) lock LOCK_FLAGS=--upgrade

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

## make catalogues: re-extract the web pages' messages and rebuild the en/ar gettext catalogues (.po and .mo)
catalogues: dev
	$(BIN)/python scripts/catalogues.py

## make screenshots: run the browser tests and write the README's pictures to docs/img/
screenshots: dev
	EXCHANGE_WRITE_SCREENSHOTS=1 $(BIN)/python -m pytest tests/web/test_browser.py

## make bench: referral lifecycles over HTTP against the local PostgreSQL, and the asyncpg floor (BENCH_ARGS=--help)
BENCH_ARGS ?=
bench: dev
	$(BIN)/python bench/load.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) exchange.db exchange.db-wal exchange.db-shm var *.egg-info
