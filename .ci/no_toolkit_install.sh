#!/usr/bin/env bash
# The no-toolkit install of issue 21: run as root inside `unshare -m` (a private mount namespace) by
# .ci/check_cuda_build.sh. Hides every CUDA toolkit folder (/usr/local/cuda*, $CUDA_HOME, $CUDA_PATH) and every nvcc on
# PATH behind empty bind mounts, then `pip install --no-build-isolation .` into the CUDA venv (PyPI's CUDA torch)
# must succeed without the CUDA plugin, and an NNForce must run on the CPU platform.
#   usage: unshare -m --propagation private bash .ci/no_toolkit_install.sh PYTHON BUILD_DIR LOG
set -euo pipefail
PY=$1 BUILD_DIR=$2 LOG=$3
empty_dir=$(mktemp -d)
empty_file=$(mktemp)          # mode 600: not executable, so `nvcc` is no longer found on PATH
for d in /usr/local/cuda* "${CUDA_HOME:-}" "${CUDA_PATH:-}"; do
  if [ -n "$d" ] && [ -d "$d" ]; then mount --bind "$empty_dir" "$(realpath "$d")"; fi
done
executable_nvcc() {  # the first executable nvcc on PATH (bash's `command -v` also reports non-executable files)
  local IFS=: d
  for d in $PATH; do if [ -f "$d/nvcc" ] && [ -x "$d/nvcc" ]; then echo "$d/nvcc"; return 0; fi; done
  return 1
}
while nvcc=$(executable_nvcc); do mount --bind "$empty_file" "$nvcc"; done
if [ -e /usr/local/cuda/include/cuda.h ] || executable_nvcc > /dev/null; then
  echo "no_toolkit_install: the toolkit is still visible" >&2; exit 1
fi
echo "no_toolkit_install: toolkit hidden (nvcc on PATH: none; /usr/local/cuda*: empty)"
rm -rf "$BUILD_DIR"
if ! env -u CUDA_HOME -u CUDA_PATH -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null NNFORCE_BUILD_DIR="$BUILD_DIR" \
     "$PY" -m pip install -v --no-build-isolation . > "$LOG" 2>&1; then
  tail -40 "$LOG"; echo "no_toolkit_install: pip install failed without a CUDA toolkit (log: $LOG)" >&2; exit 1
fi
if ! grep -o "nnforce: CUDA platform plugin not built: no CUDA toolkit found[^;]*" "$LOG"; then
  grep "nnforce:" "$LOG" || true
  echo "no_toolkit_install: the configure log does not say that the CUDA plugin was skipped for want of a toolkit" >&2
  exit 1
fi
"$PY" .ci/nnforce_cpu_check.py --no-cuda-plugin
