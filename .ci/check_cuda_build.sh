#!/usr/bin/env bash
# `make check-cuda-build` (issue 21): nnforce against the torch users have, PyPI's torch==2.13.0 (a CUDA build), in
# the venv .venv-cuda that the Makefile prepares. Run by .ci/run after `make test`; needs root (unshare) and a CUDA
# toolkit at $CUDA_HOME (default /usr/local/cuda), no GPU. Steps:
#   1. no toolkit (hidden in a private mount namespace): pip install succeeds, CPU plugin only, an NNForce runs on CPU;
#   2. toolkit named only by CUDA_HOME: pip install builds libNNForceCUDA.so (default architectures), and the
#      compile commands show that nvcc got exactly those architectures;
#   3. NNFORCE_CUDA_ARCHITECTURES=86 reaches nvcc (configure only, compile commands);
#   4. libNNForceCUDA.so loads and registers with OpenMM under a generated stub libcuda.so.1;
#   5. tests/test_plugin_core.py on the CPU platform with this torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${CUDA_PY:-.venv-cuda/bin/python}
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
JOBS=${NNFORCE_BUILD_JOBS:-2}
OUT=build/ci-cuda
LAUNCHER=""
if command -v ccache > /dev/null; then
  LAUNCHER="-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache"
fi
PYPI=(env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null)
mkdir -p "$OUT"
t0=$(date +%s); t=$t0
step() { local now; now=$(date +%s); echo "check-cuda-build: $1 done in $((now - t)) s"; t=$now; }

[ "$(id -u)" = 0 ] || { echo "check-cuda-build: needs root (unshare -m hides the toolkit for step 1)" >&2; exit 1; }
[ -x "$CUDA_HOME/bin/nvcc" ] || { echo "check-cuda-build: no CUDA toolkit at CUDA_HOME=$CUDA_HOME" >&2; exit 1; }
"$PY" -c "import torch, openmm; assert torch.version.cuda, torch.__version__; print('check-cuda-build: torch', torch.__version__, 'openmm', openmm.__version__)"

# 1. no toolkit
NNFORCE_BUILD_JOBS=$JOBS NNFORCE_CMAKE_ARGS="$LAUNCHER -DNNFORCE_BUILD_TESTS=OFF" \
  unshare -m --propagation private bash .ci/no_toolkit_install.sh "$PY" "$PWD/$OUT/notoolkit" "$OUT/notoolkit.log"
step "1 (no-toolkit install + NNForce on CPU)"

# 2. toolkit from CUDA_HOME only, default architectures
rm -rf "$OUT/toolkit"
if ! env -u CUDA_PATH -u NNFORCE_CUDA_ARCHITECTURES "${PYPI[@]}" NNFORCE_BUILD_DIR="$PWD/$OUT/toolkit" NNFORCE_BUILD_JOBS=$JOBS \
     NNFORCE_CMAKE_ARGS="$LAUNCHER -DNNFORCE_BUILD_TESTS=OFF -DCMAKE_EXPORT_COMPILE_COMMANDS=ON" \
     "$PY" -m pip install -v --no-build-isolation . > "$OUT/toolkit.log" 2>&1; then
  tail -60 "$OUT/toolkit.log"; echo "check-cuda-build: pip install with CUDA_HOME=$CUDA_HOME failed" >&2; exit 1
fi
grep -E "nnforce: (CUDA toolkit|GPU architectures|building the CUDA|CUDA platform plugin not built)" "$OUT/toolkit.log" || true
grep -q "nnforce: CUDA toolkit .* (from CUDAToolkit_ROOT / CUDA_HOME / CUDA_PATH)" "$OUT/toolkit.log" ||
  { echo "check-cuda-build: the toolkit was not taken from CUDA_HOME" >&2; exit 1; }
grep -q "nnforce: building the CUDA platform plugin" "$OUT/toolkit.log" ||
  { echo "check-cuda-build: libNNForceCUDA.so was not configured" >&2; exit 1; }
archs=$(sed -n 's/.*nnforce: GPU architectures \([^ ]*\) .*/\1/p' "$OUT/toolkit.log" | head -1)
"$PY" .ci/cuda_archs.py "$OUT/toolkit/compile_commands.json" "$archs"
step "2 (install with CUDA_HOME: libNNForceCUDA.so)"

# 3. NNFORCE_CUDA_ARCHITECTURES reaches nvcc
rm -rf "$OUT/archs"
NNFORCE_CUDA_ARCHITECTURES=86 cmake -S . -B "$OUT/archs" -DPython3_EXECUTABLE="$PWD/$PY" -DNNFORCE_BUILD_TESTS=OFF \
  -DNNFORCE_REQUIRE_CUDA=ON -DCMAKE_EXPORT_COMPILE_COMMANDS=ON > "$OUT/archs.log" 2>&1 || { tail -40 "$OUT/archs.log"; exit 1; }
"$PY" .ci/cuda_archs.py "$OUT/archs/compile_commands.json" "8.6"
step "3 (NNFORCE_CUDA_ARCHITECTURES=86 in the compile commands)"

# 4. stub driver: load + register
site=$("$PY" -c "import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))")
"$PY" .ci/cuda_stub.py "$OUT/stub" "$site/nnforce/lib/plugins/libNNForceCUDA.so" \
  "$site/OpenMM.libs/lib/plugins/libOpenMMCUDA.so" "$site/torch/lib/libtorch_cuda.so" "$site/torch/lib/libc10_cuda.so"
LD_LIBRARY_PATH="$PWD/$OUT/stub${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$PY" .ci/check_cuda_plugin.py "$OUT/stub"
step "4 (stub libcuda: libNNForceCUDA.so loads and registers)"

# 5. plugin-core tests, CPU platform, PyPI's torch
(cd tests && OMP_NUM_THREADS=1 "../$PY" -m pytest -q -p no:cacheprovider test_plugin_core.py)
step "5 (tests/test_plugin_core.py)"
echo "check-cuda-build: OK in $(( $(date +%s) - t0 )) s (venv set-up not included)"
