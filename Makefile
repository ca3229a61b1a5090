# One-command set-up on a machine with only Python 3.11 and pip.
# `make verify` and `make test` create .venv when it is missing and install the package
# into it. TORCH_SPEC picks the torch build (the default is the local CPU wheel).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.deq-dynamics-installed
DOCS_STAMP := $(VENV)/.deq-dynamics-docs-installed
DIST_STAMP := $(VENV)/.deq-dynamics-dist-installed
PROFILE ?= quick
SEED ?= 0

.PHONY: install verify test test-slow lint scripts-quick docs docs-strict dist-check clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): setup.cfg pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

verify: $(STAMP)
	$(VENV)/bin/deq-dynamics verify --profile $(PROFILE) --seed $(SEED) \
		--json reports/report.json --markdown reports/report.md --figures figures

test: $(STAMP)
	HYPOTHESIS_PROFILE=ci $(PY) -m pytest -m "not slow" -q

test-slow: $(STAMP)
	HYPOTHESIS_PROFILE=dev $(PY) -m pytest -m slow -q

# Every script in its CI-sized --quick mode (CI runs this after the tests).
scripts-quick: $(STAMP)
	@set -e; for s in scripts/*.py; do echo "== $$s --quick"; $(PY) $$s --quick; done

lint: $(STAMP)
	$(VENV)/bin/ruff check .

$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[docs]"
	touch $(DOCS_STAMP)

$(DIST_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[dist]"
	touch $(DIST_STAMP)

# The HTML documentation: theory pages + API reference from the docstrings. Warnings are
# errors, so a broken cross-reference or a module that fails to import fails the build.
docs: $(DOCS_STAMP)
	OMP_NUM_THREADS=1 $(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

# The same with every unresolved cross-reference into this project an error as well.
docs-strict: $(DOCS_STAMP)
	DOCS_NITPICKY=1 OMP_NUM_THREADS=1 $(PY) -m sphinx -W --keep-going -b html docs \
		docs/_build/html-strict

# Build the sdist and wheel and check their metadata renders on the package index.
dist-check: $(DIST_STAMP)
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(VENV)/bin/twine check --strict dist/*

clean:
	rm -rf $(VENV) reports .pytest_cache .hypothesis docs/_build docs/api dist
