#!/usr/bin/env bash
# The test command of the README and of CI: install dependencies, build, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./launch/install.sh
./launch/build.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j "$(nproc)"
