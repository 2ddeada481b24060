# Two commands on a fresh machine: `make demo` and `make test`. Each sets up
# .venv first (idempotent: a second call installs nothing).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# Every shell script of the repository, NUL-separated: the tracked and new (not
# ignored) files whose first line is a sh or bash shebang.
SHELL_SCRIPTS = git ls-files -z --cached --others --exclude-standard \
	| while IFS= read -r -d '' f; do [ -f "$$f" ] && printf '%s\0' "$$f"; done \
	| xargs -0 awk 'FNR == 1 && /^\#!.*[\/ ](ba)?sh([ \t]|$$)/ { printf "%s%c", FILENAME, 0 } { nextfile }'

.PHONY: setup test test-fast test-zoo lint unit demo shell-scripts

setup:
	@MMXAI_VENV="$(VENV)" tools/setup_env.sh

lint: setup
	"$(PY)" -m ruff check mmxai tools tests configs benchmarks
	@command -v shellcheck >/dev/null || { echo "make lint: shellcheck is missing (apt-get install shellcheck)" >&2; exit 1; }
	@$(SHELL_SCRIPTS) | xargs -0 -r -t shellcheck -x

# Lists the scripts `make lint` gives to shellcheck, one a line.
shell-scripts:
	@$(SHELL_SCRIPTS) | tr '\0' '\n'

unit: setup
	"$(PY)" -m pytest -m "not zoo" $(PYTEST_ARGS)

test: lint unit

# The edit-run loop (a few minutes): the tests that train nothing and start no
# program or browser; tests/tiers.py finds the others and marks them slow.
test-fast: setup
	"$(PY)" -m pytest -m "not slow and not zoo" $(PYTEST_ARGS)

# The model zoos: one test per family of the installed MMDetection and MMPretrain
# (random weights; about an hour on 2 cores, so not part of `make test` yet).
test-zoo: setup
	"$(PY)" -m pytest -m zoo $(PYTEST_ARGS)

demo: setup
	"$(PY)" tools/demo.py --output work_dirs/demo
