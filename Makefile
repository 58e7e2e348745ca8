# The two README commands: `make demo` and `make test`. Both create .venv and install everything.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Under no display, GUI tests and screenshots run on a virtual X server.
XRUN = $(if $(DISPLAY),,xvfb-run -a -s "-screen 0 1600x1000x24")
PYTEST_ARGS ?=

.PHONY: install demo test test-deep bench screenshots docs compat system-deps clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# CPU wheel of PyTorch first: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[testing]"
	touch $(STAMP)

install: $(STAMP)

system-deps:
	bash scripts/install-system-deps.sh

demo: install
	$(VENV)/bin/napari-restore demo

test: install system-deps
	$(XRUN) $(PY) -m pytest $(PYTEST_ARGS)

test-deep: install system-deps
	NAPARI_RESTORE_DEEP=1 $(XRUN) $(PY) -m pytest -m "slow or not slow" $(PYTEST_ARGS)

bench: install
	$(PY) benchmarks/run_all.py

screenshots: install system-deps
	$(XRUN) $(PY) scripts/make_screenshots.py

docs: install
	$(PY) scripts/gen_docs.py
	$(VENV)/bin/mkdocs build --strict

# Compatibility matrix: each end (scripts/compat/<env>.txt) is a virtualenv layered over .venv
# with only the pinned versions (and what pip must change with them) installed on top; the
# compat test selection runs in it, under Xvfb when there is no display
# (scripts/compat_env.sh). Every env that ran is recorded in docs/compat-results.json and
# rendered into docs/compatibility.md, failures too; the exit status fails if any env failed.
# CI runs `make compat COMPAT_ENVS=compat-oldest`.
COMPAT_ENVS ?= compat-oldest compat-newest
compat: install system-deps
	status=0; for env in $(COMPAT_ENVS); do bash scripts/compat_env.sh $$env || status=1; done; \
	$(PY) scripts/compat_matrix.py record $(foreach e,$(COMPAT_ENVS),.compat/$(e)/report.json) || exit 1; \
	exit $$status

clean:
	rm -rf $(VENV) .compat demo-output .pytest_cache site
