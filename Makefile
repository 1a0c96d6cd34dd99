# Two commands do all set-up on a fresh machine:
#   make demo   - creates .venv (Python 3.12), installs the project, runs the demo
#   make test   - same set-up, then the test suite (slow tests: make test-slow)
# Set-up is skipped when nothing changed (stamp file depends on pyproject.toml).

VENV      ?= .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
EXTRAS    ?= dev,nmnist,notebooks
PYTEST_ARGS ?= -n 2

.PHONY: venv demo test test-slow lint describe clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@bash scripts/make_venv.sh "$(VENV)" "$(EXTRAS)"
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m biograd.cli demo

test: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -m slow $(PYTEST_ARGS) || [ $$? -eq 5 ]  # 5: no slow tests collected

lint: $(STAMP)
	$(VENV)/bin/ruff check .

describe: $(STAMP)
	$(PY) -m biograd.cli describe

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
