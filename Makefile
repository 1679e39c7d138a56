# nnforce: the two commands are `make demo` and `make test`; both do the whole set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH := torch==2.13.0
OPENMM := openmm==8.6.1
JOBS ?= 2
export OMP_NUM_THREADS ?= 1

.PHONY: venv install inplace test test-cpp test-python demo bench clean chromium check-cuda-build

venv: $(VENV)/.deps-stamp
$(VENV)/.deps-stamp: requirements-test.txt requirements-potentials.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q "$(TORCH)" "$(OPENMM)"
	$(PIP) install -q -r requirements-test.txt "$(TORCH)" "$(OPENMM)"
	$(PIP) install -q --no-deps torchani==2.1.1  # only for the ANI-1x NeuroChem parameter files it carries
	$(PIP) install -q -r requirements-potentials.txt "$(TORCH)" "$(OPENMM)"
	$(PIP) install -q --no-deps mace-torch==0.3.16 "setuptools<81"  # why --no-deps: requirements-potentials.txt
	$(PY) -c "import torch, openmm; assert torch.__version__.startswith('2.13.0'), torch.__version__; print('torch', torch.__version__, 'openmm', openmm.__version__)"
	touch $@

# Build the plugin with CMake against the venv's torch and openmm, and install the package into the venv.
install: venv
	NNFORCE_BUILD_JOBS=$(JOBS) $(PIP) install -q --no-build-isolation --no-deps .

# Developer build: compile into python/nnforce so `PYTHONPATH=python` works from the source tree.
inplace: venv
	cmake -S . -B build/dev -DPython3_EXECUTABLE=$(abspath $(PY)) -DCMAKE_INSTALL_PREFIX=$(abspath python/nnforce)
	cmake --build build/dev --parallel $(JOBS)
	cmake --install build/dev > /dev/null

test-cpp: install
	ctest --test-dir build/cmake --output-on-failure

test-python: install chromium
	cd tests && ../$(PY) -m pytest -q -p no:cacheprovider --durations=15 .

test: test-cpp test-python

demo: install
	$(PY) -m nnforce.cli demo --out demo-output

# Headless Chromium, which tests/test_demo.py uses to open the demo report (the test skips without it).
# apt-get needs root; a machine that already has chromium (or chromium-browser) is left alone.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null) || \
		echo "nnforce: could not install chromium (needs root and Debian's registry); the report browser test will skip"

# The CUDA build against the torch users have (PyPI's torch==2.13.0, a CUDA build, with openmm-cuda-13) in a second
# venv, .venv-cuda: the no-toolkit install, libNNForceCUDA.so built with CUDA_HOME and loaded under a stub driver, the
# plugin-core tests. Needs root and a CUDA toolkit (CUDA_HOME, default /usr/local/cuda), no GPU; .ci/run runs it after
# `make test`. pip ignores this machine's pip configuration here (a local mirror may serve a CPU-only torch).
CUDA_VENV := .venv-cuda
CUDA_PY := $(CUDA_VENV)/bin/python
PYPI_PIP := env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null $(CUDA_PY) -m pip
OPENMM_CUDA := openmm-cuda-13==8.6.1
CUDA_DEPS := "$(TORCH)" "$(OPENMM)" "$(OPENMM_CUDA)" swig numpy pytest tqdm mdtraj "pyparsing<3.3"
# PyPI's wheels (about 2.9 GB) are kept outside the clone, so a second CI run on the same machine downloads nothing
# (pip's own HTTP cache stays empty here); `pip download` skips files already in the folder.
CUDA_WHEELS ?= $(HOME)/.cache/nnforce/pypi-wheels

$(CUDA_VENV)/.deps-stamp: Makefile
	test -x $(CUDA_PY) || $(PYTHON) -m venv $(CUDA_VENV)
	$(PYPI_PIP) install -q --upgrade pip setuptools wheel
	mkdir -p "$(CUDA_WHEELS)"
	$(PYPI_PIP) download -q -d "$(CUDA_WHEELS)" $(CUDA_DEPS)
	$(PYPI_PIP) install -q --no-index --find-links "$(CUDA_WHEELS)" $(CUDA_DEPS)
	$(CUDA_PY) -c "import torch, openmm; assert torch.__version__.startswith('2.13.0') and torch.version.cuda, torch.__version__; print('torch', torch.__version__, 'openmm', openmm.__version__)"
	touch $@

check-cuda-build: $(CUDA_VENV)/.deps-stamp
	CUDA_PY=$(CUDA_PY) NNFORCE_BUILD_JOBS=$(JOBS) bash .ci/check_cuda_build.sh

bench: install
	$(PY) bench/plugin_overhead.py
	$(PY) bench/neighbor_scaling.py

clean:
	rm -rf build python/nnforce/lib python/nnforce/_plugin*.so python/nnforce/plugin.py python/nnforce/_build_info.py
