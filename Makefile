# Two commands do all set-up on a fresh machine:
#   make demo   - creates .venv (Python 3.12), installs the project, runs the demo
#   make test   - same set-up, then the fast test tier (at most 5 min on 2 cores); the other tiers,
#                 run by CI (.ci/run): make test-standalone, make test-slow, make test-cuda, make lint
# Set-up is skipped when nothing changed (stamp file depends on pyproject.toml and setup.py).
# GPU backend (brian2cuda): make gpu installs the gpu extra; make test-cuda compiles the model to
# CUDA (needs nvcc) and, where a GPU is present, checks it against cpp_standalone.
# GeNN backend (train.backend: genn): make genn builds pygenn 5.4.0 from GeNN's source (GENN_ARCHIVE, default the
# vendored ../shared/vendor/genn-5.4.0.tar.gz; about 15 min on 2 cores) into .venv; make test-genn runs the GeNN
# equality tests (they skip without pygenn; the golden-text tests of the generated GeNN code run in every tier).
# Lava cross-check of the netx export: make lava (its own Python 3.10 environment), then make test-lava.
# Peer baseline of the speed table (snnTorch): make peer (Python 3.11), then runs/benchmark.py --peer.

VENV      ?= .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
GPU_STAMP := $(VENV)/.installed-gpu
GENN_STAMP := $(VENV)/.installed-genn
GENN_ARCHIVE ?= ../shared/vendor/genn-5.4.0.tar.gz
EXTRAS    ?= dev,nmnist,notebooks,loihi
PYTEST_ARGS ?= -n 2

LAVA_VENV ?= .venv-lava
PEER_VENV ?= .venv-peer

.PHONY: venv gpu genn lava peer demo test test-standalone test-slow test-cuda test-genn test-lava test-peer lint describe clean

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py
	@bash scripts/make_venv.sh "$(VENV)" "$(EXTRAS)"
	@touch $(STAMP)

gpu: $(GPU_STAMP)

$(GPU_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[gpu]"
	@touch $(GPU_STAMP)

genn: $(GENN_STAMP)

$(GENN_STAMP): $(STAMP)
	@bash scripts/make_genn.sh "$(VENV)" "$(GENN_ARCHIVE)"
	@touch $(GENN_STAMP)

# Lava (lava-nc 0.10, lava-dl 0.6) needs Python 3.10: its own environment, for the netx cross-check only.
lava: $(LAVA_VENV)/.installed

$(LAVA_VENV)/.installed:
	@bash scripts/make_lava_venv.sh "$(LAVA_VENV)"

peer: $(PEER_VENV)/.installed

$(PEER_VENV)/.installed:
	@bash scripts/make_peer_venv.sh "$(PEER_VENV)"

test-lava: $(STAMP) lava
	$(PY) -m pytest tests/test_loihi_export.py tests/test_lava_learning.py -m slow $(PYTEST_ARGS)

# The NIR export in snnTorch 1.0 and norse 1.1, run in the peer environment (skipped without it).
test-peer: $(STAMP) peer
	$(PY) -m pytest tests/test_nir_peers.py -m slow $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) -m biograd.cli demo

test: $(STAMP)
	$(PY) -m pytest -m "(not slow and not cuda and not standalone and not genn) or smoke" $(PYTEST_ARGS)

test-standalone: $(STAMP)
	$(PY) -m pytest -m "standalone and not smoke and not slow and not cuda and not genn" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -m "slow and not cuda and not genn" $(PYTEST_ARGS) || [ $$? -eq 5 ]  # 5: no slow tests collected

test-genn: genn
	$(PY) -m pytest -m genn $(PYTEST_ARGS)

test-cuda: $(GPU_STAMP)
	$(PY) -m pytest -m cuda $(PYTEST_ARGS) || [ $$? -eq 5 ]

# The import contract is checked on the package as it installs (models/, analysis/ and equations/ are
# sub-packages of biograd there, not in the checkout).
LINT_TREE := build/lint-imports

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	@rm -rf $(LINT_TREE) build/lib && $(PY) -m pip install --quiet --no-deps --no-build-isolation --target $(LINT_TREE) .
	cd $(LINT_TREE) && $(abspath $(VENV))/bin/lint-imports --no-cache --config $(abspath pyproject.toml)

describe: $(STAMP)
	$(PY) -m biograd.cli describe

clean:
	rm -rf $(VENV) $(LAVA_VENV) build *.egg-info .pytest_cache  # (build/genn holds the pygenn wheel)
