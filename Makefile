# Two commands on a fresh machine: `make demo` and `make test`. Each makes .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test test-docs bench clean

# torch and torchvision are pinned here (pip takes this pair from local disk);
# pyproject asks only for compatible ranges.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.14.1 torchvision==0.29.1
	$(PIP) install --quiet -e .
	touch $@

# Quantus (a reference for the faithfulness metrics) asks for opencv-python, which would sit beside the
# opencv-python-headless that grad-cam brings and fight over cv2: install it without its dependencies,
# all of which the dev extra already has.
$(VENV)/.dev: $(VENV)/.installed
	$(PIP) install --quiet -e '.[dev]'
	$(PIP) install --quiet --no-deps 'quantus>=0.6'
	touch $@

demo: $(VENV)/.installed
	$(PY) -m cnnlab.demo

test: $(VENV)/.dev
	$(PY) -m pytest -n 2 -q

# Every `cnnlab` command of README.md and docs/*.md, run as written in a fresh folder with only sizes shrunk.
test-docs: $(VENV)/.dev
	$(PY) -m pytest -n 2 -q -m docs tests/test_docs_commands.py

bench: $(VENV)/.dev
	$(PY) benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache
