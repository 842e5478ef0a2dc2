#!/usr/bin/env bash
# Configures and builds rlkv (Release, Ninja, ccache) into BUILD_DIR (default: build/).
# Extra CMake arguments pass through, e.g. -DRLKV_WITH_CUDA=OFF or -DCMAKE_PREFIX_PATH=<wheel torch>.
# RLKV_WERROR=ON (CI) turns warnings in the project's own code into errors.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
# ccache keys on the compiler's command line; with the checkout as base directory its absolute
# paths become relative, so a second clone of the repository (CI builds one) reuses the cache.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
extra=()
[ -n "${RLKV_WERROR:-}" ] && extra+=("-DRLKV_WERROR=${RLKV_WERROR}")
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${extra[@]+"${extra[@]}"} "$@"
cmake --build "$BUILD_DIR" -j "$JOBS"
