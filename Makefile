# ParkPulse developer entry points. The README's two commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test check lint services services-down bench clean-venv

## demo: services up, migrate, ingest + simulate a park for one day, then print what was stored
demo: $(STAMP)
	$(BIN)/parkpulse services up
	$(BIN)/parkpulse demo

## test: lint, type-check and run the whole suite against real Mosquitto and TimescaleDB
test: lint $(STAMP)
	$(BIN)/parkpulse services up
	$(BIN)/pytest -n 2 --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/mypy scripts

services: $(STAMP)
	$(BIN)/parkpulse services up

services-down: $(STAMP)
	$(BIN)/parkpulse services down

bench: $(STAMP)
	$(BIN)/parkpulse services up
	$(BIN)/parkpulse bench ingest

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[server,dev]'
	touch $(STAMP)

clean-venv:
	rm -rf $(VENV)
