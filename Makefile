# Two commands do all the set-up: `make demo` and `make test` create .venv when it is missing,
# install oodbench into it, then run the main job resp. the test suite (`make test` also installs the browser
# the leaderboard tests need, when it can: see the `browser` target).
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench slow install clean browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/oodbench run

# The leaderboard tests render the page in a real headless browser, Debian's chromium: installed with apt-get when it
# is missing and make runs as root; otherwise one line says how, and those two tests are skipped with that reason
# (they fail instead when OODBENCH_REQUIRE_BROWSER=1, as in CI).
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium with apt-get (the leaderboard tests render the page in it)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "could not install chromium: the leaderboard browser tests will be skipped" >&2; \
	else \
	  echo "chromium not found: run 'sudo apt-get install -y chromium' to run the leaderboard browser tests (skipped now)" >&2; \
	fi

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python -m pytest -q -m benchmark --benchmark-enable tests/benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
