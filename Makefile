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

compat: install
	$(PY) -m pip install --quiet "tox>=4"
	$(PY) -m tox -e compat-oldest,compat-newest

clean:
	rm -rf $(VENV) demo-output .pytest_cache site
