# Every target creates and uses .venv itself; only Python 3.10+ is needed up front.
# uv (https://docs.astral.sh/uv/, `pip install uv`) is used when it is on the PATH or
# importable by $(PYTHON) (`python -m uv`); plain venv + pip otherwise. `make run`
# installs only what running needs (the package, no dev extras); `make test` adds the
# dev tools.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUN_STAMP := $(VENV)/.run-stamp
STAMP  := $(VENV)/.installed-stamp
TS_DIR := clients/typescript
BENCH_SECONDS ?= 5
UV ?= $(shell command -v uv 2>/dev/null || ($(PYTHON) -m uv --version >/dev/null 2>&1 && echo "$(PYTHON) -m uv"))

.PHONY: install run test lint pytest ts-deps ts-test test-deps bench bench-deps clean methods-doc \
        client-methods

ifneq ($(strip $(UV)),)
VENV_NEW    = test -x $(BIN)/python || $(UV) venv -q --seed $(VENV)
PIP_INSTALL = $(UV) pip install -q --python $(BIN)/python
else
VENV_NEW    = test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
PIP_INSTALL = $(BIN)/python -m pip install -q
endif

$(RUN_STAMP): pyproject.toml
	$(VENV_NEW)
	$(PIP_INSTALL) -e .
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml
	$(VENV_NEW)
	$(PIP_INSTALL) -e '.[dev]'
	touch $(RUN_STAMP) $(STAMP)

install: $(STAMP)

## make run: the daemon in the foreground on the default config and socket
run: $(RUN_STAMP)
	$(BIN)/xsys serve

lint: install
	$(BIN)/ruff check xsys tests $(wildcard bench/*.py)
	$(BIN)/mypy --strict xsys

## System packages some tests use (a real Alertmanager, a real Prometheus and promtool);
## skipped with a note when apt is unavailable, and those tests then skip with a reason.
test-deps:
	@if command -v prometheus-alertmanager >/dev/null 2>&1 && command -v prometheus-node-exporter >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 \
	  && command -v promtool >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-alertmanager prometheus-node-exporter prometheus >/dev/null) \
	  || echo "note: could not install prometheus-alertmanager and prometheus; their tests will skip"; \
	else echo "note: prometheus-alertmanager or prometheus not installed; their tests will skip"; fi

pytest: install test-deps
	$(BIN)/pytest

ts-deps:
	cd $(TS_DIR) && npm ci --no-audit --no-fund

ts-test: install ts-deps
	cd $(TS_DIR) && XSYS_PYTHON=$(CURDIR)/$(BIN)/python npm test

test: lint pytest ts-test

## Benchmarks: print tables and write bench/results/*.json
bench-deps: install
	@command -v inotifywait >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq inotify-tools >/dev/null) || echo "note: inotify-tools unavailable"
	$(BIN)/python -m pip install -q watchfiles

bench: install bench-deps ts-deps
	$(BIN)/python bench/ipc.py
	@for f in bench/fs.py bench/watch.py bench/monitor.py bench/metrics.py bench/checks.py; do \
	  if [ -f $$f ]; then $(BIN)/python $$f || exit 1; fi; done
	@if [ -f bench/ts_client.mjs ]; then cd $(TS_DIR) && npm run build >/dev/null && cd ../.. && XSYS_PYTHON=$(CURDIR)/$(BIN)/python node bench/ts_client.mjs; fi

## docs/methods.md and docs/configuration.md from the registry and the config dataclasses
methods-doc: $(RUN_STAMP)
	$(BIN)/python -m xsys.docs

## The Python client's typed wrappers (xsys/client/_methods.py) from the method registry
client-methods: install
	$(BIN)/python -m xsys.client._codegen

clean:
	rm -rf $(VENV) $(TS_DIR)/node_modules $(TS_DIR)/dist bench/results
