# Two commands on a fresh machine: `make run` (serve, demo mode when no OCI config) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run dev test test-smoke lint bench install migrate clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

migrate: $(STAMP)
	$(PY) manage.py migrate --noinput

run: migrate
	GATEWAY_DEMO=$${GATEWAY_DEMO-auto} exec $(PY) manage.py serve

dev: migrate
	GATEWAY_DEMO=$${GATEWAY_DEMO-auto} exec $(PY) manage.py serve --reload --workers 1

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-smoke: $(STAMP)
	$(PY) -m pytest -m smoke $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) bench/install_litellm.py
	$(PY) -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
