# The two quick-start commands: `make run` starts the gateway on the built-in demo config,
# `make test` runs the whole suite. Each creates or updates the local virtualenv first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
INTEROP := tests/interop
NODE_STAMP := $(INTEROP)/node_modules/.installed-stamp

.PHONY: run test lint bench clean promtool console-tools

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(0 if v >= (3, 11) else \
		"Only1MCP needs Python >= 3.11, found %d.%d; run: make PYTHON=python3.11 ..." % v[:2])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

# Pinned npm packages for interop tests: the conformance suite, a Node 22 for it, reference servers.
$(NODE_STAMP): $(INTEROP)/package.json $(INTEROP)/package-lock.json
	cd $(INTEROP) && npm ci --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

run: $(STAMP)
	$(BIN)/only1mcp-supervisor $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

# promtool (Debian's prometheus package) checks the /metrics output in tests/integration/test_metrics.py.
promtool:
	@command -v promtool >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get install -y -q prometheus || { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q prometheus; }; }

# The operator's views are tested in tmux (only1mcp top) and headless Chromium (/ui): Debian packages.
console-tools:
	@for tool in tmux chromium; do command -v $$tool >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get install -y -q $$tool || { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q $$tool; }; }; done

test: lint $(NODE_STAMP) promtool console-tools
	$(BIN)/pytest

bench: $(STAMP)
	@command -v wrk >/dev/null || $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -q wrk
	@command -v valgrind >/dev/null || $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -q valgrind
	$(BIN)/python -m bench.state_propagation
	$(BIN)/python -m bench.supervisor_idle
	$(BIN)/python -m bench.proxy_overhead
	$(BIN)/python -m bench.instructions
	$(BIN)/python -m bench.failover
	$(BIN)/python -m bench.slowloris
	$(BIN)/python -m bench.lifecycle
	$(BIN)/python -m bench.failed_backend
	$(BIN)/python -m bench.rate_limits
	$(BIN)/python -m bench.admin_api
	$(BIN)/python -m bench.metrics_cost --seconds 5

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
