# trainsim developer commands. `make demo` and `make test` work on a fresh clone: both create
# .venv and install the package with what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PACKAGES := chakra_et topology collectives models engine studies
EXTRAS ?= dev,torch,ray

.PHONY: venv demo test unit lint proto bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/trainsim demo

lint: venv
	$(PY) -m ruff check $(PACKAGES) tests benchmarks
	$(PY) -m mypy $(PACKAGES)

unit: venv
	$(PY) -m pytest -q -n auto

test: lint unit

proto: venv
	cd chakra_et/schema && ../../$(PY) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. et_def.proto

bench: venv
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
