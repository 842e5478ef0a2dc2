#!/usr/bin/env bash
# Compiles and links the GPU configuration on a machine without a GPU: the CUDA LibTorch of the
# pinned PyTorch wheel (torch 2.11.0+cu130, what the GPU machine runs; its headers and libraries,
# downloaded from PyPI and checked against the pinned SHA-256) and the CUDA kernels (nvcc). It builds
# the targets launch/gpu_check.sh runs, so code that only a CUDA LibTorch compiles (CUDA graphs,
# device sampling, fused layer kernels, streams, the GPU op tests) cannot break unseen. Nothing runs:
# running needs a GPU (launch/gpu_check.sh). Then tools/kernel_report.py --check: the kernels'
# registers, spills, shared memory, occupancy and PTX load / MMA instructions for sm_90, failing on a
# spill or a kernel that no longer fits the blocks per SM its launch bounds ask for.
# Exit status: 0 built (or skipped: no nvcc, or the wheel could not be downloaded; one line says
# which), else the build's. Environment: GPU_BUILD_DIR (build-torch-cuda), RLKV_WERROR (as build.sh),
# TORCH_WHEEL_DIR (where the wheel and its unpacked files are kept: .cache/torch-cuda).
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_VERSION=2.11.0
TORCH_SHA256=7aa2f9bbc6d4595ba72138026b2074be1233186150e9292865e04b7a63b8c67a  # cp311 manylinux_2_28_x86_64
B=${GPU_BUILD_DIR:-build-torch-cuda}
W=${TORCH_WHEEL_DIR:-$PWD/.cache/torch-cuda}
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
if [[ ! -x $NVCC ]]; then
  echo "check_gpu_build.sh: skipped: no nvcc (PATH or /usr/local/cuda/bin)"
  exit 0
fi
CUDA_LIB=$(dirname "$(dirname "$(readlink -f "$NVCC")")")/lib
if [[ ! -f $W/torch/share/cmake/Torch/TorchConfig.cmake ]]; then
  mkdir -p "$W"
  # The wheel for CPython 3.11 whatever the local Python: only its C++ headers and libraries are used.
  if ! python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 --implementation cp \
      --abi cp311 --platform manylinux_2_28_x86_64 --require-hashes -d "$W" \
      -r /dev/stdin <<< "torch==$TORCH_VERSION --hash=sha256:$TORCH_SHA256"; then
    echo "check_gpu_build.sh: skipped: torch $TORCH_VERSION could not be downloaded from PyPI"
    exit 0
  fi
  python3 -m zipfile -e "$W"/torch-"$TORCH_VERSION"-*.whl "$W"
  rm -f "$W"/torch-"$TORCH_VERSION"-*.whl
fi
extra=()
[[ -n "${RLKV_WERROR:-}" ]] && extra+=("-DRLKV_WERROR=${RLKV_WERROR}")
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
mkdir -p "$B"
# The wheel's libtorch_cuda needs libraries that come in other wheels (cuFile, cuSPARSELt, NVSHMEM);
# they are not needed to link the executables, only to run them.
cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRLKV_WITH_DISTRIBUTED=OFF \
  -DCMAKE_PREFIX_PATH="$W/torch/share/cmake" ${extra[@]+"${extra[@]}"} \
  "-DCMAKE_EXE_LINKER_FLAGS=-Wl,-rpath-link,$CUDA_LIB -Wl,--allow-shlib-undefined" > "$B/configure.log" 2>&1 || {
  tail -20 "$B/configure.log"
  echo "check_gpu_build.sh: configuration failed (log: $B/configure.log)"
  exit 1
}
grep -q "LibTorch CUDA ON" "$B/configure.log" || {
  grep "rlkv:" "$B/configure.log"
  echo "check_gpu_build.sh: the configuration did not find the CUDA LibTorch"
  exit 1
}
cmake --build "$B" -j "${JOBS:-$(nproc)}" --target op_test_runtime_cuda op_test_layer_ops_cuda op_test_nccl \
  bench_decode_step rlkv
echo "check_gpu_build.sh: the GPU configuration (torch $TORCH_VERSION+cu130, $("$NVCC" --version | grep -o 'release [0-9.]*')) builds"
python3 tools/kernel_report.py --check --nvcc "$NVCC"
