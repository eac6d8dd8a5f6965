# `make demo` and `make test` each do all the set-up first (scripts/setup.sh).
PYTHON ?= python3

.PHONY: setup demo test test-fast

setup:
	@bash scripts/setup.sh

demo: setup
	hrgraph compile specs/hiresnet18.yaml

test: setup
	$(PYTHON) -m pytest -q

test-fast: setup
	$(PYTHON) -m pytest -q -m "not slow"
