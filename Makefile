# Switchyard: `make run` starts the whole system on embedded defaults; `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
CHROMIUM ?= /usr/bin/chromium
# Settings that make `check --deploy` judge production, not the development defaults.
DEPLOY_ENV := DEBUG=false SECRET_KEY=check-deploy-only-$(shell date +%s)-not-a-real-secret-value-0123456789 \
	ALLOWED_HOSTS=switchyard.example.com AZURE_MODE=azure

.PHONY: run test install install-dev lint layers typecheck check-deploy pytest browser vendor clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# The settings default to production, which needs SECRET_KEY and AZURE_MODE; `make run` says it is
# development to the processes it starts. Exported here rather than written to a .env file, so
# nothing left in the checkout turns a later command (or an image built from it) into development.
run: export DEBUG := true
run: export AZURE_MODE := emulator
# Sign-in with Microsoft against the emulator's tenant (provisioning/emulator/identity_registry.py:
# the portal's client registration and the demo directory's groups), beside the demo passwords.
run: export ENTRA_TENANT_ID := 00000000-0000-0000-0000-000000000000
run: export ENTRA_CLIENT_ID := 8e1d4c7a-2f5b-4a9e-b3c6-0d7f1e2a9b84
run: export ENTRA_CLIENT_SECRET := demo-portal-secret
run: export ENTRA_AUTHORITY := http://127.0.0.1:$(or $(EMULATOR_PORT),8010)
run: export ENTRA_GRAPH_URL := http://127.0.0.1:$(or $(EMULATOR_PORT),8010)
run: export ENTRA_ADMIN_GROUP_ID := 5b6c7d8e-9f01-4123-8345-656667686970
run: export ENTRA_FINANCE_GROUP_ID := 6c7d8e9f-0123-4234-9456-767778798081
run: export ENTRA_SECURITY_GROUP_ID := 7d8e9f01-2345-4345-a567-878889909192
run: export PASSWORD_SIGN_IN_WITH_ENTRA := true
# Prometheus's counts of every process (web, worker), summed by /metrics; emptied at each start.
run: export PROMETHEUS_MULTIPROC_DIR := $(CURDIR)/var/prometheus
run: install
	@mkdir -p var
	@rm -rf var/prometheus && mkdir -p var/prometheus
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	@printf '\n  Switchyard is starting on  http://127.0.0.1:8000\n'
	@printf '  Azure emulator (ARM + Azure OpenAI) on http://127.0.0.1:8010  (state: /_emulator/)\n\n'
	@printf '  Demo sign-ins (password switchyard-demo):\n'
	@printf '    admin@example.com   platform admin\n    fiona@example.com   finance approver\n'
	@printf '    sam@example.com     security approver (audit trail)\n'
	@printf '    lena@example.com    lead, Marketing\n    mark@example.com    member, Marketing\n'
	@printf '    fred@example.com    member, Finance\n    hana@example.com    lead, HR\n\n'
	@printf '  Sign in with Microsoft (the emulator'"'"'s tenant, password microsoft-demo):\n'
	@printf '    nina@example.com    Marketing and HR\n    leo@example.com     Finance\n'
	@printf '    omar@example.com    Central IT, platform admin\n\n'
	@printf '  Demo API key (Marketing, for the Company assistant; kept in var/demo-api-key):\n    %s\n' \
	  "$$(cat var/demo-api-key 2>/dev/null || echo 'none: see seed_demo above')"
	@printf '    OpenAI(base_url="http://127.0.0.1:8000/openai/v1", api_key=KEY), model="company-assistant"\n\n'
	@printf '  Ctrl-C stops every process.\n\n'
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start -f Procfile

test: install-dev browser lint layers typecheck check-deploy pytest

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The import contracts in pyproject.toml: a broken layer fails here, naming the offending import.
layers: install-dev
	$(BIN)/lint-imports

typecheck: install-dev
	$(BIN)/mypy .

check-deploy: install-dev
	$(DEPLOY_ENV) $(BIN)/python manage.py check --deploy --fail-level WARNING

pytest: install-dev
	@mkdir -p var
	$(BIN)/pytest

# Browser tests drive Debian's Chromium; install it when it is missing and we may.
browser:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Chromium is missing: install Debian's chromium package (sudo apt-get install chromium) for the browser tests."; exit 1; fi; \
	fi

vendor:
	scripts/vendor-assets.sh

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .mypy_cache .ruff_cache
