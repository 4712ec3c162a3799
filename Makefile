# Two commands set up a fresh machine (see README):
#   make demo   install everything into .venv/ and run the main job on the embedded demo
#   make test   install everything into .venv/ and run the test suite
# Both are safe to re-run; the install step is skipped when pyproject.toml is unchanged.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-all bench-core clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned to the release whose torchvision imports beside it (deepinv needs torchvision)
	$(PY) -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install -q -e ".[all]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/cbid demo -o cbid_demo

# one worker per core, a test file per worker (tests/conftest.py gives each worker its share of the threads)
test: install
	$(PY) -m pytest -q -n auto --dist loadfile

test-all: install
	$(PY) -m pytest -q -n auto --dist loadfile -m ""

bench-core: install
	$(PY) benchmarks/levin_core.py --out benchmarks/results/levin_core.csv

clean:
	rm -rf cbid_demo .pytest_cache
