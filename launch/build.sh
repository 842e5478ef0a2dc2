#!/usr/bin/env bash
# Configures and builds rlkv (Release, Ninja, ccache) into BUILD_DIR (default: build/).
# Extra CMake arguments pass through, e.g. -DRLKV_WITH_CUDA=OFF or -DCMAKE_PREFIX_PATH=<wheel torch>.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build "$BUILD_DIR" -j "$JOBS"
