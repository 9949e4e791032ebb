# Rollcall. `make run` starts everything on this machine; `make test` runs every test.
# Both install what they need first (a venv in .venv from requirements-dev.txt).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
STAGE ?= dev
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: install run test bench provision

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# RUN_ARGS: e.g. RUN_ARGS="--site-port 9000 --data-dir /tmp/rc" (see python -m local.stack --help)
run: install
	$(PY) -m local.stack $(RUN_ARGS)

test: install browser
	$(PY) -m pytest $(PYTEST_ARGS)

# The classroom engine bench by default; BENCH="bench/*.py" runs every one
# (some take many minutes: the school, 1 GiB upload and lecture-hall benches).
BENCH ?= bench/face_engine.py
bench: install
	@for script in $(BENCH); do echo "== $$script"; $(PY) $$script || exit 1; done

provision: install
	$(PY) -m ops.provision --stage $(STAGE)

# -- AWS (see docs/OPERATIONS.md) ------------------------------------------------
.PHONY: deploy destroy package smoke

# Provision (tables, buckets, CloudFront, ...), chalice deploy, publish the site;
# ends with the site's and the API's URLs. A second run changes nothing.
deploy: install
	$(PY) -m ops.video_layer publish --stage $(STAGE)
	$(PY) -m ops.deploy deploy --stage $(STAGE)

# Asks first; says what could not be deleted yet (a distribution disables slowly).
destroy: install
	$(PY) -m ops.deploy destroy --stage $(STAGE)

# The Terraform artefact, without an account or credentials.
package: install
	$(PY) -m ops.deploy package --stage $(STAGE) build/terraform-$(STAGE)
	$(PY) -m ops.video_layer terraform build/terraform-$(STAGE)

# Checks a deployed stage end to end without touching its data.
smoke: install
	$(PY) -m ops.smoke --stage $(STAGE)

# -- data: archives and backups (see docs/OPERATIONS.md) ----------------------------
.PHONY: backup restore export import
# One machine: one archive (FILE, default rollcall-backup-<time>.tar) of the data
# directory, taken while the stack runs (or not); restore into an empty one.
# DATA_DIR: the stack's data directory (default .rollcall).
BACKUP = $(PY) -m local.stack.backup $(if $(DATA_DIR),--data-dir $(DATA_DIR),)

backup: install
	$(BACKUP) backup $(FILE)

restore: install
	@test -n "$(FILE)" || { echo "usage: make restore FILE=rollcall-backup-....tar [DATA_DIR=...]"; exit 2; }
	$(BACKUP) restore $(FILE)

# A school's portable archive (people with photos, classes, rosters, accounts,
# sessions, registers, face crops) in one ZIP: LOCAL=1 for the running local
# stack, else STAGE on AWS. Import is idempotent and prints new one-time passwords.
ARCHIVE = $(if $(LOCAL),$(PY) -m local.stack cli archive,$(PY) -m ops.cli --stage $(STAGE) archive)

export: install
	@test -n "$(FILE)" || { echo "usage: make export FILE=school.zip [STAGE=prod | LOCAL=1]"; exit 2; }
	$(ARCHIVE) export $(FILE)

import: install
	@test -n "$(FILE)" || { echo "usage: make import FILE=school.zip [STAGE=prod | LOCAL=1]"; exit 2; }
	$(ARCHIVE) import $(FILE)

# AWS: the stage's tables as they were at TIME (ISO 8601 with a zone; default the
# latest restorable time) in new tables, and the stage switched to them (asks
# first; then make deploy). `python -m ops.restore switch --back` returns.
.PHONY: restore-tables
restore-tables: install
	$(PY) -m ops.restore --stage $(STAGE) restore $(if $(TIME),--time $(TIME),--latest)

# -- the web app (static_site/) --------------------------------------------------
.PHONY: site publish browser
SITE_OUT ?= build/site
API_URL ?= http://127.0.0.1:8001

# Build the site (SCSS -> CSS, config.js for API_URL) into SITE_OUT.
site: install
	$(PY) -m ops.publish --out $(SITE_OUT) --api-url $(API_URL)

# Render config.js with the deployed API's URL and upload the site to SITE_BUCKET.
publish: install
	$(PY) -m ops.publish --stage $(STAGE)

# The browser tests drive Debian's Chromium (never a downloaded browser); node runs
# the site's JS modules in a few tests; axe-core (npm, pinned in package.json) checks
# every page for accessibility problems.
browser:
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium chromium-driver)
	@command -v node >/dev/null || (apt-get update && apt-get install -y nodejs)
	@command -v npm >/dev/null || (apt-get update && apt-get install -y npm)
	@test -f node_modules/axe-core/axe.min.js || npm ci --no-audit --no-fund
