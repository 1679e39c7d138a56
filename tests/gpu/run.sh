#!/usr/bin/env bash
# One command on an (offline) CUDA machine: build nnforce with its CUDA plugin, run the CUDA tests and the CUDA
# benchmark, print the result table, copy the results to $OUT (when set). Budget: under 10 minutes in all.
#
# Needs: python3 with a CUDA build of torch, nvcc, cmake, a GPU; OpenMM (+ openmm-cuda-13), SWIG, numpy and pytest
# importable (e.g. from the wheels fetched by download-wheels.sh, see docs/gpu.md):
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#   export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH
#   bash tests/gpu/run.sh
# Options (environment): NNFORCE_GPU_BENCH=0 skips the benchmark; NNFORCE_GPU_BENCH_SIZES="22 200" picks sizes;
# NNFORCE_GPU_JOBS sets the build parallelism; NNFORCE_GPU_PYTEST_ARGS adds pytest arguments (e.g. "-x -k graphs").
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PY=${PYTHON:-python3}
OUT_DIR=${OUT:-}
LOGS=$ROOT/build/gpu-logs
mkdir -p "$LOGS"
START=$(date +%s)
stage() { echo; echo "=== [$(( $(date +%s) - START )) s] $*"; }
save() { [ -n "$OUT_DIR" ] && mkdir -p "$OUT_DIR" && cp -f "$@" "$OUT_DIR"/ 2>/dev/null; true; }
fail() { echo "run.sh: $*" >&2; save "$LOGS"/*.log; exit 1; }

stage "environment"
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
command -v nvcc > /dev/null || fail "nvcc is not on PATH (the CUDA plugin is compiled with it)."
command -v cmake > /dev/null || fail "cmake is not on PATH."
nvcc --version | tail -1
$PY - <<'EOF' || fail "the Python environment is incomplete (see above)."
import importlib, sys, sysconfig, os
print("python", sys.version.split()[0])
missing = [m for m in ("torch", "openmm", "numpy", "pytest") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"missing Python packages: {missing}; install the wheels from download-wheels.sh (docs/gpu.md).")
import torch, openmm
print("torch", torch.__version__, "CUDA", torch.version.cuda, "GPUs", torch.cuda.device_count())
print("openmm", openmm.__version__, "in", os.path.dirname(openmm.__file__))
if torch.version.cuda is None or not torch.cuda.is_available():
    sys.exit("torch has no usable CUDA device: the CUDA plugin cannot be built or tested here.")
if not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")):
    sys.exit("Python.h is missing (python3-dev): the SWIG module cannot be compiled.")
EOF

# OpenMM's CUDA platform (libOpenMMCUDA.so) needs libcufft.so.12 and libnvrtc.so.13. Its RUNPATH points at
# site-packages/nvidia/cu13/lib next to OpenMM.libs, which does not exist when openmm is installed with --target
# away from torch: find the libraries torch uses (or the CUDA toolkit's) and put them on LD_LIBRARY_PATH. This must
# happen before Python starts (the dynamic loader reads LD_LIBRARY_PATH once).
SITE_DIRS=$($PY -c "import torch, openmm, os; print(os.path.dirname(os.path.dirname(torch.__file__))); print(os.path.dirname(os.path.dirname(openmm.__file__)))" | sort -u)
CUDA_HOME_GUESS=$(dirname "$(dirname "$(command -v nvcc)")")
for lib in libcufft.so.12 libnvrtc.so.13 libcudart.so.13; do
  found=""
  for base in $SITE_DIRS "$CUDA_HOME_GUESS" /usr/local/cuda /usr/lib/x86_64-linux-gnu; do
    found=$(find "$base" -maxdepth 6 -name "$lib*" \( -path "*nvidia*" -o -path "*cuda*" -o -path "*x86_64-linux-gnu*" \) 2>/dev/null | head -1)
    [ -n "$found" ] && break
  done
  if [ -n "$found" ]; then
    dir=$(dirname "$found")
    case ":${LD_LIBRARY_PATH:-}:" in *":$dir:"*) ;; *) export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}";; esac
    echo "$lib: $dir"
  else
    echo "warning: $lib not found; OpenMM's CUDA platform may fail to load"
  fi
done
$PY - <<'EOF' || fail "OpenMM has no CUDA platform (see the plugin load failures above)."
import openmm
names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
print("OpenMM platforms:", names)
for failure in openmm.Platform.getPluginLoadFailures():
    print("  plugin load failure:", failure)
raise SystemExit(0 if "CUDA" in names else 1)
EOF

stage "build (CMake, CUDA plugin included)"
CC_ARCH=$($PY -c "import torch; m, n = torch.cuda.get_device_capability(0); print(f'{m}{n}')")
export TORCH_CUDA_ARCH_LIST=$($PY -c "import torch; m, n = torch.cuda.get_device_capability(0); print(f'{m}.{n}')")
export CUDACXX=${CUDACXX:-$(command -v nvcc)}
JOBS=${NNFORCE_GPU_JOBS:-$(nproc)}
BUILD=$ROOT/build/gpu
timeout 330 cmake -S . -B "$BUILD" -DPython3_EXECUTABLE="$(command -v $PY)" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$ROOT/python/nnforce" -DNNFORCE_BUILD_TESTS=OFF -DCMAKE_CUDA_ARCHITECTURES="$CC_ARCH" \
    -DCMAKE_CUDA_COMPILER="$CUDACXX" > "$LOGS/configure.log" 2>&1 \
  || { tail -40 "$LOGS/configure.log"; fail "CMake configure failed (build/gpu-logs/configure.log)."; }
grep -E "nnforce:" "$LOGS/configure.log"
grep -q "building the CUDA platform plugin" "$LOGS/configure.log" || { tail -20 "$LOGS/configure.log"; fail "CMake did not enable the CUDA plugin (torch CUDA / libOpenMMCUDA.so not found)."; }
timeout 330 cmake --build "$BUILD" --parallel "$JOBS" > "$LOGS/build.log" 2>&1 \
  || { grep -E "error|Error" "$LOGS/build.log" | head -30; tail -20 "$LOGS/build.log"; fail "the build failed (build/gpu-logs/build.log)."; }
cmake --install "$BUILD" > "$LOGS/install.log" 2>&1 || fail "cmake --install failed."
ls -la python/nnforce/lib/plugins/
export PYTHONPATH="$ROOT/python${PYTHONPATH:+:$PYTHONPATH}"
$PY -c "import nnforce, openmm; print('nnforce', nnforce.__version__); print([f for f in openmm.Platform.getPluginLoadFailures() if 'nnforce' in f] or 'all nnforce plugins loaded')"

stage "CUDA tests (tests/gpu/test_cuda.py)"
TEST_STATUS=0
timeout 240 $PY -m pytest tests/gpu/test_cuda.py -q -rs -p no:cacheprovider --durations=10 \
    --junitxml="$LOGS/test_cuda.xml" ${NNFORCE_GPU_PYTEST_ARGS:-} 2>&1 | tee "$LOGS/test_cuda.log"
TEST_STATUS=${PIPESTATUS[0]}
save "$LOGS/test_cuda.log" "$LOGS/test_cuda.xml"

BENCH_STATUS=0
if [ "${NNFORCE_GPU_BENCH:-1}" != "0" ]; then
  stage "CUDA benchmark (bench/cuda_bench.py)"
  REMAINING=$(( 570 - ($(date +%s) - START) ))
  if [ "$REMAINING" -lt 60 ]; then
    echo "skipping the benchmark: only $REMAINING s left of the 10-minute budget"
    BENCH_STATUS=1
  else
    timeout "$REMAINING" $PY bench/cuda_bench.py --budget-s $(( REMAINING - 20 )) ${NNFORCE_GPU_BENCH_SIZES:+--sizes $NNFORCE_GPU_BENCH_SIZES} \
        2>&1 | tee "$LOGS/cuda_bench.log"
    BENCH_STATUS=${PIPESTATUS[0]}
    save "$LOGS/cuda_bench.log" bench/results/cuda.md
  fi
fi

stage "summary"
[ -f bench/results/cuda.md ] && cat bench/results/cuda.md
grep -E "passed|failed|error" "$LOGS/test_cuda.log" | tail -1
echo "tests exit status: $TEST_STATUS; benchmark exit status: $BENCH_STATUS; total $(( $(date +%s) - START )) s"
save "$LOGS"/*.log
[ "$TEST_STATUS" -eq 0 ] && [ "$BENCH_STATUS" -eq 0 ]
