# Every target creates and uses .venv itself; only Python 3.10+ is needed up front.
# Installer: uv (https://docs.astral.sh/uv/) when it is on the PATH or `$(PYTHON) -m uv`
# works, else uv pip-installed from PyPI into .uv-bootstrap/ (when $(PYTHON) has pip),
# else plain venv + pip. `make run UV=` forces pip; `make run UV=/path/to/uv` picks one.
# `make run` installs only what running needs (the package, no dev extras); `make test`
# adds the dev tools.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUN_STAMP := $(VENV)/.run-stamp
STAMP  := $(VENV)/.installed-stamp
UV_BOOT := .uv-bootstrap
UV     ?= auto
TS_DIR := clients/typescript
BENCH_SECONDS ?= 5

.PHONY: install run test lint pytest ts-deps ts-test test-deps bench bench-deps clean methods-doc \
        client-methods dist binary test-all

# $(call pip_install,ARGS): create .venv if needed and install ARGS into it (see above).
define pip_install
	@set -e; uv='$(UV)'; \
	if [ "$$uv" = auto ]; then uv=; \
	  if command -v uv >/dev/null 2>&1; then uv=uv; \
	  elif $(PYTHON) -m uv --version >/dev/null 2>&1; then uv='$(PYTHON) -m uv'; \
	  elif [ -x $(UV_BOOT)/bin/uv ]; then uv=$(UV_BOOT)/bin/uv; \
	  elif $(PYTHON) -m pip install -q --disable-pip-version-check --target $(UV_BOOT) uv \
	       >/dev/null 2>&1 && [ -x $(UV_BOOT)/bin/uv ]; then uv=$(UV_BOOT)/bin/uv; fi; fi; \
	if [ -n "$$uv" ]; then \
	  echo "install $(1) (uv: $$uv)"; \
	  test -x $(BIN)/python || $$uv venv -q --python $(PYTHON) $(VENV); \
	  $$uv pip install -q --python $(BIN)/python $(1); \
	else \
	  echo "install $(1) (pip)"; \
	  test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); \
	  test -x $(BIN)/pip || $(BIN)/python -m ensurepip -q; \
	  $(BIN)/python -m pip install -q $(1); \
	fi
endef

$(RUN_STAMP): pyproject.toml
	$(call pip_install,-e .)
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml
	$(call pip_install,-e '.[dev]')
	touch $(RUN_STAMP) $(STAMP)

install: $(STAMP)

## make run: the daemon in the foreground on the default config and socket
run: $(RUN_STAMP)
	$(BIN)/xsys serve

lint: install
	$(BIN)/ruff check xsys tests $(wildcard bench/*.py)
	$(BIN)/mypy --strict xsys

## System packages some tests use (a real Alertmanager, a real Prometheus and promtool,
## headless Chromium for the dashboard, tmux for xsys top);
## skipped with a note when apt is unavailable, and those tests then skip with a reason.
test-deps:
	@if command -v prometheus-alertmanager >/dev/null 2>&1 && command -v prometheus-node-exporter >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 \
	  && command -v promtool >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-alertmanager prometheus-node-exporter prometheus >/dev/null) \
	  || echo "note: could not install prometheus-alertmanager and prometheus; their tests will skip"; \
	else echo "note: prometheus-alertmanager or prometheus not installed; their tests will skip"; fi
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "note: could not install chromium; the dashboard browser test will skip"; \
	else echo "note: chromium not installed; the dashboard browser test will skip"; fi
	@if command -v tmux >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null) \
	  || echo "note: could not install tmux; the xsys top and CLI terminal tests will skip"; \
	else echo "note: tmux not installed; the xsys top and CLI terminal tests will skip"; fi

pytest: install test-deps
	$(BIN)/pytest

ts-deps:
	cd $(TS_DIR) && npm ci --no-audit --no-fund

ts-test: install ts-deps
	cd $(TS_DIR) && XSYS_PYTHON=$(CURDIR)/$(BIN)/python npm test

test: lint ts-test pytest  # ts-test first: its node_modules let the docs' TypeScript blocks run in pytest

## Benchmarks: print tables and write bench/results/*.json
bench-deps: install
	@command -v inotifywait >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq inotify-tools >/dev/null) || echo "note: inotify-tools unavailable"
	$(call pip_install,watchfiles)

bench: install bench-deps ts-deps
	$(BIN)/python bench/ipc.py
	@for f in bench/fs.py bench/watch.py bench/monitor.py bench/metrics.py bench/checks.py bench/scrape.py bench/live.py bench/dashboard.py bench/push.py bench/proc.py bench/startup.py; do \
	  if [ -f $$f ]; then $(BIN)/python $$f || exit 1; fi; done
	@if [ -f bench/ts_client.mjs ]; then cd $(TS_DIR) && npm run build >/dev/null && cd ../.. && XSYS_PYTHON=$(CURDIR)/$(BIN)/python node bench/ts_client.mjs; fi

## docs/methods.md and docs/configuration.md from the registry and the config dataclasses
methods-doc: $(RUN_STAMP)
	$(BIN)/python -m xsys.docs

## The Python client's typed wrappers (xsys/client/_methods.py) from the method registry
client-methods: install
	$(BIN)/python -m xsys.client._codegen

## make dist: sdist and wheel in dist/ (python -m build)
dist: install
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

## make binary: a one-file executable for this platform in dist/ (PyInstaller)
binary: install
	$(BIN)/pyinstaller --noconfirm --onefile --name xsys --collect-submodules xsys \
	  --collect-data xsys --distpath dist --workpath build/pyinstaller --specpath build \
	  --log-level WARN xsys/__main__.py
	@ls -l dist/xsys*

## make test-all: the suite on every CPython 3.10+ found (nox; pyenv's versions too)
test-all: install
	PATH="$$(ls -d $$HOME/.pyenv/versions/3.1[0-9]*/bin 2>/dev/null | tr '\n' ':')$$PATH" \
	  $(BIN)/nox -f noxfile.py

clean:
	rm -rf $(VENV) $(UV_BOOT) $(TS_DIR)/node_modules $(TS_DIR)/dist bench/results dist build
