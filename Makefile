# Set-up and everyday commands. Each target builds the virtual environment on first use, so on a fresh
# machine `make demo` and `make test` are all it takes.
VENV ?= .venv
PYTHON ?= python3
# The CPU build of PyTorch; with a GPU, install the torch build for your CUDA into $(VENV) first.
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.napari-miro-deps

.PHONY: setup install test lint demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet ".[pyqt6,testing]"
	touch $(STAMP)

setup: $(STAMP)

# Non-editable: the tests run against the installed wheel, manifest and sample data included.
install: setup
	$(PY) -m pip install --quiet --no-deps --force-reinstall .

test: install
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks scripts research

demo: install
	$(VENV)/bin/napari-miro demo --out demo_output

bench: install
	$(PY) benchmarks/io_speed.py

clean:
	rm -rf $(VENV) build dist demo_output .pytest_cache .ruff_cache
