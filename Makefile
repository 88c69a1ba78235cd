# One entry point for people and CI. `make test` is what .ci/run calls.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The environments cdk.json configures (tools/cdk_json.py: their one home), read when used.
ENVS = $(shell $(PYTHON) -m tools.cdk_json)
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
# checkov in its own virtual environment: its pins clash with the app's (tests/test_checkov.py).
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := .local/checkov-venv
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export CDK_DISABLE_CLI_TELEMETRY := true
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1

APT_PACKAGES := mariadb-server jq

.PHONY: help system install checkov checkov-docs lint format test pytest synth docs cost diagram demo bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(PY_STAMP): requirements.txt requirements-dev.txt containers/training/requirements.txt containers/inference/requirements.txt containers/tracking/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The ec2-mode tracking server test runs MLflow against a real MariaDB, and the instance's
# boot script uses jq. Installed from Debian's packages where we may (root + apt); elsewhere
# that test skips and says why.
system:  ## Debian packages the tests use (mariadb-server, jq), when root with apt-get
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "apt-get install$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "not installed:$$missing (needs root and apt-get); the ec2 server test will skip"; fi

$(CHECKOV_STAMP):
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check 'checkov==$(CHECKOV_VERSION)'
	touch $@

checkov: $(CHECKOV_STAMP)  ## install checkov (pinned) in its own venv (.local/checkov-venv)

install: system $(PY_STAMP) $(NODE_STAMP) $(CHECKOV_STAMP)  ## create .venv, node_modules, the checkov venv (and the Debian packages above)

lint: $(PY_STAMP)  ## ruff (lint + format check) and mypy
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: $(PY_STAMP)  ## apply ruff fixes and formatting
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# In parallel (pytest-xdist): one worker per core, each synthesized app's tests in one worker
# (tests/conftest.py). `make pytest PYTEST_WORKERS=0` runs it in this process, serially.
PYTEST_WORKERS ?= auto

# With bytecode caches (gitignored __pycache__) even where the environment turns them off
# (PYTHONDONTWRITEBYTECODE=1, as on some CI images): otherwise every worker parses, rewrites
# the asserts of and compiles ~200 test modules and the package again on each run (about 3 s
# of each worker's start-up, measured with `pytest --collect-only`: 11.3 s -> 8.6 s).
pytest: install  ## the test suite only, in parallel (PYTEST_WORKERS=0: serially)
	env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup

synth: install  ## synthesize every environment and print its stacks with their dependencies
	@test -n "$(ENVS)" || { echo "make synth: no environments read from cdk.json (python3 -m tools.cdk_json)"; exit 1; }
	@for env in $(ENVS); do \
	  echo "== $$env"; \
	  npx cdk synth --quiet -c env=$$env -o cdk.out/$$env >/dev/null || exit 1; \
	  npx cdk list --show-dependencies --app cdk.out/$$env || exit 1; \
	done

test: install lint pytest synth  ## everything CI runs: lint, tests, synth of every environment

docs: $(PY_STAMP)  ## regenerate the README's settings reference and docs/nag.md (cdk-nag acknowledgements)
	$(PY) -m tools.settings_reference --write
	$(PY) -m tools.nag_report --write

checkov-docs: $(PY_STAMP) $(CHECKOV_STAMP)  ## regenerate docs/checkov.md (checkov's acknowledged findings) from every variant
	$(PY) -m tools.checkov_report --write

cost: $(PY_STAMP)  ## monthly cost estimate per tracking mode (ENV=staging: one env; ARGS=--refresh-prices: prices from the AWS Price List API)
	$(PY) -m tools.cost $(if $(ENV),--env $(ENV)) $(ARGS)

diagram: $(PY_STAMP)  ## regenerate docs/architecture.md (Mermaid) from the synthesized app
	$(PY) -m tools.diagram --write

demo: $(PY_STAMP)  ## train, promote and score locally against a local MLflow (no AWS account)
	$(PY) local/demo.py $(ARGS)

bench: install  ## benchmarks (ratios against a baseline measured in the same run)
	$(PY) benchmarks/synth.py
	$(PY) benchmarks/inference.py

clean:  ## remove build output (keeps .venv, node_modules and .local)
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache
