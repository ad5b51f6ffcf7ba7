# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: install data compile test test-cython-debug test-cython-portable demo bench clean clean-numba-cache

install: $(VENV)/.installed

$(VENV)/.installed: setup.py pyproject.toml $(wildcard kernels/cython/*.pyx kernels/cython/*.pxd kernels/cython/*.h)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# the test dependencies pin PyTorch 2.13 (the tests' reference), which has no wheels
	@# for Python 3.9: say so before minutes of installing end in pip's resolver error
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 10) and "make needs Python 3.10 or newer (the tests install PyTorch 2.13, which has no wheels for Python %d.%d): rm -rf $(VENV), then make PYTHON=python3.11 ...; or pip install . for fastnn alone" % sys.version_info[:2])'
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q "Cython>=3.0" "numpy>=1.24" "scipy>=1.10"
	$(PY) -m pip install -q --no-build-isolation -e ".[test,mkl]"
	touch $@

# Fashion-MNIST from Debian's dataset-fashion-mnist package, when we can install it.
data:
	@if [ ! -f $(FMNIST)/train-images-idx3-ubyte.gz ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Fashion-MNIST (Debian package dataset-fashion-mnist)"; \
		(apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1)) || \
		echo "could not install dataset-fashion-mnist; the demo will use scikit-learn's digits"; \
	fi

# The numba kernels compiled into their disk cache on every core (`fastnn compile`,
# fastnn/precompile.py): about 3.5 minutes on 2 cores the first time, 20 s after. The
# suite would otherwise compile them one after another as its tests first call them.
compile: install
	$(PY) -m fastnn compile

test: install data
	@# (a failed compile leaves the kernels to the suite, whose tests then say what failed)
	-$(PY) -m fastnn compile
	$(VENV)/bin/pytest -q tests

# The Cython kernels with bounds, wraparound and initialisation checks on: build them in
# place, run the tests of the Cython backend against them, then build the release
# kernels again (each build about 3-5 minutes on 2 cores).
CYTHON_TESTS = tests/test_cython_build.py tests/test_probe_bounds.py tests/test_cython_kernels.py \
	tests/test_conformance.py tests/test_conv_ops.py tests/test_depthwise_conv.py
test-cython-debug: install
	FASTNN_CYTHON_DEBUG=1 $(PY) setup.py -q build_ext --inplace
	FASTNN_CYTHON_DEBUG=1 $(VENV)/bin/pytest -q -p no:cacheprovider $(CYTHON_TESTS) -k "cython or build or bounds"; \
	status=$$?; $(PY) setup.py -q build_ext --inplace; exit $$status

# The Cython kernels as a wheel for other machines builds them (FASTNN_NATIVE=0:
# x86-64-v2, not -march=native, so no FMA, and _fastnn_math.h's and _common.pxd's
# fallbacks run) and without OpenMP (FASTNN_NO_OPENMP=1), in one build: the two change
# separate code.
# Builds them in place, runs the Cython backend's tests against them (the build's own
# test checks that both settings took), then builds the release kernels again.
CYTHON_PORTABLE_TESTS = tests/test_cython_build.py tests/test_cython_kernels.py \
	tests/test_conformance.py tests/test_float64_exp.py tests/test_float64_tanh.py \
	tests/test_cython_numba_sincos.py
test-cython-portable: install
	FASTNN_NATIVE=0 FASTNN_NO_OPENMP=1 $(PY) setup.py -q build_ext --inplace
	FASTNN_NATIVE=0 FASTNN_NO_OPENMP=1 $(VENV)/bin/pytest -q -p no:cacheprovider $(CYTHON_PORTABLE_TESTS) \
		-k "cython or build or float64"; \
	status=$$?; $(PY) setup.py -q build_ext --inplace; exit $$status

demo: install data
	$(PY) -m fastnn demo

bench: install data
	$(PY) -m bench.report

# Empties the checkout's numba disk cache (disk space, a clean start). No longer needed
# after editing a helper module (config.py, vmath.py, blas.py, select.py, ...): Numba
# watches only each kernel's own file, but the backend stamps every cache index with a
# digest of the helpers' sources too (kernels/numba_cpu/cache_stamp.py), and a kernel
# saved from other sources compiles again.
clean-numba-cache:
	rm -f kernels/numba_cpu/__pycache__/*.nbi kernels/numba_cpu/__pycache__/*.nbc

clean: clean-numba-cache
	rm -rf build $(VENV) kernels/cython/*.c kernels/cython/*.so .pytest_cache .benchmarks
