# Two commands on a fresh machine: `make demo` and `make test`. Each sets up
# .venv first (idempotent: a second call installs nothing).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup test lint unit demo

setup:
	@MMXAI_VENV=$(VENV) tools/setup_env.sh

lint: setup
	$(PY) -m ruff check mmxai tools tests configs benchmarks

unit: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test: lint unit

demo: setup
	$(PY) tools/demo.py --output work_dirs/demo
