# One entry point for a fresh machine: `make run` (the whole asset graph on the bundled
# demo data) and `make test` (the whole suite). Both create .venv and install into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Re-install when the project's dependency list changes.
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
# Tests and benchmarks read the public datasets from here (CI: the shared/ copy beside the clone).
export RECLM_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: setup run test test-fast browser-deps ui bench clean

setup: $(STAMP)

# pip compiles bytecode as it installs (the stack imports ~2x faster than without, and this
# machine sets PYTHONDONTWRITEBYTECODE=1); our own package is compiled explicitly.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	rm -f $(VENV)/.installed-*
	$(BIN)/pip install --disable-pip-version-check -q -e '.[test,distributed]'
	$(BIN)/python -m compileall -q reclm_dagster
	touch $@

run: setup
	$(BIN)/reclm run

test: setup browser-deps
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not e2e"

# Headless Chromium + ChromeDriver from Debian for the browser tests of the UIs
# (skipped, with a message, where they cannot be installed: no root or no apt-get).
browser-deps:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "note: chromium/chromedriver missing and not installable here: browser tests will be skipped"; fi

ui: setup
	$(BIN)/reclm ui

bench: setup
	$(BIN)/python benchmarks/reference_baselines.py
	$(BIN)/python benchmarks/encoder_speed.py

clean:
	rm -rf .reclm
