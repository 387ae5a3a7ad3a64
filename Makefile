# trainsim developer commands. `make demo` and `make test` work on a fresh clone: both create
# .venv and install the package with what they need (`make demo` the base package only).
#
# The repository root is the `trainsim` package (its folders are `trainsim.models`, ...), so
# nothing imports it from the source tree: tests, benchmarks and the demo run against the copy
# `pip install .` put into .venv, reinstalled whenever a source file changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PACKAGES := chakra_et topology collectives models engine studies
ROOT_FILES := __init__.py __main__.py py.typed
EXTRAS ?= dev,torch,ray
SOURCES := $(shell find $(ROOT_FILES) $(PACKAGES) -type f -not -path '*/__pycache__/*')
# mypy finds modules by their folders; it checks a tree of links named as the package installs.
TYPECHECK := build/typecheck

.PHONY: venv demo test unit lint proto bench clean

# The virtual environment with the base package's dependencies.
$(VENV)/.base: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet .
	touch $@

# The extras the tests, lint and benchmarks need (torch, ray, pytest, mypy, ...).
$(VENV)/.extras: $(VENV)/.base
	$(PY) -m pip install --quiet '.[$(EXTRAS)]'
	touch $@

# The package itself, rebuilt from the working tree when a source file changed.
$(VENV)/.installed: $(VENV)/.base $(SOURCES)
	rm -rf build/lib build/bdist.* *.egg-info  # a stale build/lib would ship deleted modules
	$(PY) -m pip install --quiet --no-deps --force-reinstall .
	touch $@

venv: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/trainsim demo

lint: $(VENV)/.extras $(VENV)/.installed
	$(PY) -m ruff check $(ROOT_FILES:py.typed=) $(PACKAGES) tests benchmarks
	rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)/trainsim
	for f in $(ROOT_FILES) $(PACKAGES); do ln -s $(CURDIR)/$$f $(TYPECHECK)/trainsim/$$f; done
	cd $(TYPECHECK) && $(CURDIR)/$(PY) -m mypy --config-file $(CURDIR)/pyproject.toml -p trainsim

unit: $(VENV)/.extras $(VENV)/.installed
	$(VENV)/bin/pytest -q -n auto

test: lint unit

proto: $(VENV)/.extras
	cd chakra_et/schema && ../../$(PY) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. et_def.proto

bench: $(VENV)/.extras $(VENV)/.installed
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
