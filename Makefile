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

LOOP_SCENARIOS := tests/vpp/test_loop_scenarios.py

## test: lint, type-check and run the whole suite against real Mosquitto and TimescaleDB
test: lint $(STAMP)
	$(BIN)/parkpulse services up
	@# the VPP loop scenarios (minutes of waiting for one-minute event intervals) run in a second pytest
	@# beside the rest of the suite; both must pass, and the scenarios' output follows the suite's
	@mkdir -p .cache
	@$(BIN)/pytest -p no:cacheprovider $(LOOP_SCENARIOS) > .cache/loop-scenarios.log 2>&1 & loop=$$!; \
	$(BIN)/pytest --ignore=$(LOOP_SCENARIOS); suite=$$?; \
	wait $$loop; scenarios=$$?; \
	echo "--- $(LOOP_SCENARIOS) (run beside the suite) ---"; cat .cache/loop-scenarios.log; \
	test $$suite -eq 0 && test $$scenarios -eq 0

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
