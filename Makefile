# Rollcall. `make run` starts everything on this machine; `make test` runs every test.
# Both install what they need first (a venv in .venv from requirements-dev.txt).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
STAGE ?= dev
PYTEST_ARGS ?=

.PHONY: install run test bench provision

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

run: install
	$(PY) -m local.stack

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

provision: install
	$(PY) -m chalicelib.provision --stage $(STAGE)

# -- AWS (see docs/OPERATIONS.md) ------------------------------------------------
.PHONY: deploy destroy package

deploy: install
	$(PY) -m chalicelib.provision --stage $(STAGE)
	$(VENV)/bin/chalice deploy --stage $(STAGE)
	$(MAKE) publish STAGE=$(STAGE)

destroy: install
	@read -r -p "This deletes the $(STAGE) API, and every student, photo, video and record of it. Type '$(STAGE)' to go on: " answer && [ "$$answer" = "$(STAGE)" ] || { echo "Nothing was deleted."; exit 1; }
	$(VENV)/bin/chalice delete --stage $(STAGE)
	$(PY) -m chalicelib.provision --stage $(STAGE) --destroy --yes

package: install
	$(VENV)/bin/chalice package --stage $(STAGE) --pkg-format terraform build/terraform-$(STAGE)
