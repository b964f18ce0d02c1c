# Two commands do everything on a fresh machine:
#   make demo   - install, then pretrain + train on the embedded demo data (2-core CPU: ~2 min,
#                 after ~1.5 min of install on a fresh clone)
#   make test   - install, then run the test suite
# and a second test environment:
#   make test-numpy2 - the suite in .venv-numpy2: numpy 2, no mediapipe (landmarks from dlib;
#                      tests that need mediapipe skip with the reason)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
REQS := requirements.txt requirements-core.txt requirements-test.txt requirements-test-core.txt requirements-nodeps.txt
STAMP := $(VENV)/.installed-$(shell cat $(REQS) | cksum | cut -d' ' -f1)
VENV_NUMPY2 ?= .venv-numpy2
PY2 := $(VENV_NUMPY2)/bin/python
REQS2 := requirements-core.txt requirements-test-core.txt requirements-nodeps.txt
STAMP2 := $(VENV_NUMPY2)/.installed-$(shell cat $(REQS2) | cksum | cut -d' ' -f1)

.PHONY: install install-numpy2 demo test test-numpy2 bench help-docs clean

install: $(STAMP)

$(STAMP): $(REQS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-test.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	rm -f $(VENV)/.installed-*
	touch $@

install-numpy2: $(STAMP2)

$(STAMP2): $(REQS2)
	test -x $(PY2) || $(PYTHON) -m venv $(VENV_NUMPY2)
	$(PY2) -m pip install -q -r requirements-test-core.txt "numpy>=2"
	$(PY2) -m pip install -q --no-deps -r requirements-nodeps.txt
	$(PY2) -c "import numpy, importlib.util as u; assert int(numpy.__version__.split('.')[0]) >= 2, numpy.__version__; assert u.find_spec('mediapipe') is None, 'mediapipe in the numpy-2 env'"
	rm -f $(VENV_NUMPY2)/.installed-*
	touch $@

demo: $(STAMP)
	$(PY) demo.py $(DEMO_ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-numpy2: $(STAMP2)
	$(PY2) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) bench/bench_structure.py
	$(PY) bench/bench_step.py

# the --help blocks of README.md and docs/cli.md, regenerated from the scripts (tests/test_readme.py
# fails when they drift)
help-docs: $(STAMP)
	$(PY) tools/readme_help.py

clean:
	rm -rf $(VENV) $(VENV_NUMPY2) demo_data checkpoints/demo checkpoints/demo-* outputs/demo outputs/demo-fixtures
