# Everything a newcomer needs: `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test test-all chaos bench lint clean django chromium redis-server etcd-server wrk systemd-analyze screenshots

# The real Circus, in its own venv, for the wire-compatibility tests
# (tests/test_circus_compat.py runs its circusctl and CircusClient).
CIRCUS_VENV    := .venv-circus
CIRCUS_VERSION := 0.19.0
CIRCUS_STAMP   := $(CIRCUS_VENV)/.installed-$(CIRCUS_VERSION)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# One stamp per install flavour, redone when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@

$(CIRCUS_VENV)/bin/python:
	$(PYTHON) -m venv $(CIRCUS_VENV)

# The stamp names the version, so changing CIRCUS_VERSION reinstalls.
$(CIRCUS_STAMP): | $(CIRCUS_VENV)/bin/python
	$(CIRCUS_VENV)/bin/pip install -q --disable-pip-version-check circus==$(CIRCUS_VERSION)
	$(CIRCUS_VENV)/bin/python -c "import circus.client, circus.circusctl"
	touch $@

# The real supervisord, in its own venv: tests/test_supervisor_config.py runs
# it on a supervisord.conf and compares what it starts with what bigtopd does.
SUPERVISOR_VENV    := .venv-supervisor
SUPERVISOR_VERSION := 4.3.0
SUPERVISOR_STAMP   := $(SUPERVISOR_VENV)/.installed-$(SUPERVISOR_VERSION)

$(SUPERVISOR_VENV)/bin/python:
	$(PYTHON) -m venv $(SUPERVISOR_VENV)

$(SUPERVISOR_STAMP): | $(SUPERVISOR_VENV)/bin/python
	$(SUPERVISOR_VENV)/bin/pip install -q --disable-pip-version-check supervisor==$(SUPERVISOR_VERSION)
	$(SUPERVISOR_VENV)/bin/supervisord --version
	touch $@

# The venv's bin first on PATH, where the quickstart finds bigtop-wsgi.
run: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/bigtopd examples/quickstart.ini

# The Django example (examples/django/README.md): served on
# http://127.0.0.1:8000/ by two bigtop-wsgi workers and a job worker, once
# its migrate watcher (a one-shot task) has run the migrations. Its control
# sockets in a runtime directory of its own, so that it runs beside `make
# run` (bigtopctl reaches it with the same BIGTOP_RUNTIME_DIR).
DJANGO_RUNTIME_DIR := $(CURDIR)/examples/django/var/run

django: $(VENV)/.installed-test
	BIGTOP_RUNTIME_DIR=$(DJANGO_RUNTIME_DIR) $(BIN)/bigtopd examples/django/bigtop.ini

# Debian's chromium, which Playwright drives in tests/test_web_browser.py
# (it downloads no browser of its own).
chromium:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" -eq 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	  else echo "note: no /usr/bin/chromium and not root: browser tests are skipped (sudo apt-get install chromium)"; fi; }

# redis-server, which tests/test_builtin_plugins.py starts (skipped without it).
redis-server:
	@command -v redis-server >/dev/null || { \
	  if [ "$$(id -u)" -eq 0 ]; then apt-get update -qq && apt-get install -y -qq redis-server; \
	  else echo "note: no redis-server and not root: the redis_observer test is skipped (sudo apt-get install redis-server)"; fi; }

# wrk, which tests/test_upgrade_load.py drives the HTTP load with (skipped without it).
wrk:
	@command -v wrk >/dev/null || { \
	  if [ "$$(id -u)" -eq 0 ]; then apt-get update -qq && apt-get install -y -qq wrk; \
	  else echo "note: no wrk and not root: the upgrade-under-load test is skipped (sudo apt-get install wrk)"; fi; }

# systemd-analyze, which tests/test_startup.py checks bigtopctl startup's unit with
# (skipped without it).
systemd-analyze:
	@command -v systemd-analyze >/dev/null || { \
	  if [ "$$(id -u)" -eq 0 ]; then apt-get update -qq && apt-get install -y -qq systemd; \
	  else echo "note: no systemd-analyze and not root: the unit verification test is skipped (sudo apt-get install systemd)"; fi; }

# etcd, which the cluster tests run as a 3-member cluster on loopback ports
# (tests/etcd.py; skipped without it).
etcd-server:
	@command -v etcd >/dev/null || { \
	  if [ "$$(id -u)" -eq 0 ]; then apt-get update -qq && apt-get install -y -qq etcd-server; \
	  else echo "note: no etcd and not root: the cluster tests are skipped (sudo apt-get install etcd-server)"; fi; }

# The suite runs on TEST_JOBS pytest-xdist workers (each test still alone in
# its own directory, with its own daemons); TEST_JOBS=0 runs it in one process.
TEST_JOBS ?= 2

test: $(VENV)/.installed-test $(CIRCUS_STAMP) $(SUPERVISOR_STAMP) chromium redis-server etcd-server wrk systemd-analyze
	$(BIN)/pytest -n $(TEST_JOBS) -m "not slow"

test-all: $(VENV)/.installed-test $(CIRCUS_STAMP) $(SUPERVISOR_STAMP) chromium redis-server etcd-server wrk systemd-analyze
	$(BIN)/pytest -n $(TEST_JOBS) -m "not chaos"
	$(MAKE) chaos

# The fault scenarios, longer and harder than in `make test` (BIGTOP_CHAOS_SCALE
# multiplies their durations and counts).
chaos: $(VENV)/.installed-test
	rm -f chaos-report.md
	BIGTOP_CHAOS_SCALE=5 BIGTOP_CHAOS_REPORT=$(CURDIR)/chaos-report.md $(BIN)/pytest -m chaos

bench: $(VENV)/.installed
	$(BIN)/python bench/lifecycle.py
	$(BIN)/python bench/scaling.py
	$(BIN)/python bench/control.py
	$(BIN)/python bench/logs.py
	$(BIN)/python bench/stats.py

# The web console's screenshots in docs/img/, taken by its browser test.
screenshots: $(VENV)/.installed-test chromium
	BIGTOP_SCREENSHOTS=1 $(BIN)/pytest tests/test_web_browser.py

lint: $(VENV)/.installed-test
	$(BIN)/ruff check bigtop tests bench
	$(BIN)/mypy

# The man pages of the five commands, written from their own parsers
# (bigtop/cli/manpages.py) into man/, which is not committed:
# man -l man/bigtopctl.1
.PHONY: man
man: $(VENV)/.installed
	$(BIN)/python -m bigtop.cli.manpages man

clean:
	rm -rf $(VENV) $(CIRCUS_VENV) $(SUPERVISOR_VENV) bench/.venv-anchors .pytest_cache .mypy_cache .ruff_cache
