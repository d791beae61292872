# Ashyq Esik — every task a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
FLASK := $(VENV)/bin/flask
STAMP := $(VENV)/.installed
export FLASK_APP := receptions
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv translations migrate demo run test test-clock test-slow lint format i18n bench backup restore clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) ## Create .venv and install the project with its dev tools

translations: $(STAMP) ## Compile the kk/ru/en catalogues (.mo files are never committed)
	$(VENV)/bin/pybabel compile -d receptions/translations

migrate: $(STAMP) ## Apply database migrations (SQLite by default, DATABASE_URL otherwise)
	$(FLASK) db upgrade

demo: migrate ## Load the demo data (idempotent)
	$(FLASK) demo load

run: translations demo ## Set everything up and serve on http://127.0.0.1:5000 (SQLite)
	$(FLASK) --debug run --host 127.0.0.1 --port 5000

test: translations ## Run the whole suite on SQLite and PostgreSQL, browser tests included
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

# Moments in UTC: 00:05 on 1 January in Almaty (a new day, month and year, a holiday;
# the first minutes, when a session started today has slots still to come) and 23:55 on
# 31 March there (the last minutes of a day and a month).
CLOCK_MOMENTS ?= 2026-12-31T19:05:00 2027-03-31T18:55:00
test-clock: translations ## Run the SQLite suite with the clock set to hard moments (libfaketime)
	@for moment in $(CLOCK_MOMENTS); do \
	  echo "== the clock at $${moment/T/ } UTC"; \
	  FAKETIME_DONT_FAKE_MONOTONIC=1 faketime -f "@$${moment/T/ }" $(PY) -m pytest -q \
	    -m "not slow and not realtime and not browser" -k "not postgresql" --ignore=tests/load \
	    $(PYTEST_ARGS) || exit 1; \
	done

test-slow: translations ## Run only the long load and fuzz tests
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

lint: $(STAMP) ## ruff (lint + format check) and strict mypy for scheduling/
	$(VENV)/bin/ruff check receptions scheduling tests benchmarks wsgi.py
	$(VENV)/bin/ruff format --check scheduling
	$(VENV)/bin/mypy scheduling

format: $(STAMP) ## Apply ruff's formatter and import sorting
	$(VENV)/bin/ruff check --select I --fix receptions scheduling tests benchmarks
	$(VENV)/bin/ruff format scheduling

i18n: $(STAMP) ## Extract messages, update the catalogues, fill English, compile
	$(VENV)/bin/pybabel extract -F babel.cfg -k _l -k lazy_gettext -k ngettext:1,2 -o receptions/translations/messages.pot --no-location --sort-output --project "Ashyq Esik" .
	$(VENV)/bin/pybabel update -i receptions/translations/messages.pot -d receptions/translations --no-fuzzy-matching --ignore-obsolete --width 100
	$(PY) -m receptions.i18n.catalogues fill-source
	$(VENV)/bin/pybabel compile -d receptions/translations
	$(PY) -m receptions.i18n.catalogues check

BENCHMARKS := $(shell grep -l '^if __name__ == "__main__"' benchmarks/*.py)

bench: $(STAMP) ## Run every benchmark script with its defaults and print their figures
	@for script in $(BENCHMARKS); do echo "== $$script"; $(PY) $$script || exit 1; done

backup: $(STAMP) ## Back up the database (DATABASE_URL or the local SQLite) into backups/
	$(FLASK) backup create

restore: $(STAMP) ## Restore a backup: make restore FILE=backups/…
	@test -n "$(FILE)" || { echo "usage: make restore FILE=backups/<file>"; exit 2; }
	$(FLASK) backup restore --yes "$(FILE)"

clean: ## Remove the venv, caches and the local SQLite database
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis instance/*.sqlite3*
