# Every target creates and uses .venv itself; only Python 3.10+ is needed up front.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
TS_DIR := clients/typescript
BENCH_SECONDS ?= 5

.PHONY: install run test lint pytest ts-deps ts-test test-deps bench bench-deps clean methods-doc \
        client-methods

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## make run: the daemon in the foreground on the default config and socket
run: install
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
	@if command -v tmux >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null) \
	  || echo "note: could not install tmux; tests/test_cli_tmux.py will skip"; \
	else echo "note: tmux not installed; tests/test_cli_tmux.py will skip"; fi

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

methods-doc: install
	$(BIN)/python -m xsys.docs README.md

## The Python client's typed wrappers (xsys/client/_methods.py) from the method registry
client-methods: install
	$(BIN)/python -m xsys.client._codegen

clean:
	rm -rf $(VENV) $(TS_DIR)/node_modules $(TS_DIR)/dist bench/results
