#!/usr/bin/env bash
# Downloads (here, where Debian's archive is reachable) the Debian 12 packages that the LibTorch-only
# build of rlkv needs besides LibTorch, CUDA and a compiler, into .gpu-debs/ (git-ignored, ~32 MB), so
# they can travel to a GPU machine that has no apt and no network (launch/gpu_check.sh unpacks them
# into a private prefix there; nothing is installed system-wide).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu-debs
cd .gpu-debs
apt-get download nlohmann-json3-dev libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 \
  libboost-program-options1.74-dev libboost-program-options1.74.0 libboost1.74-dev catch2 \
  libpcre2-dev libpcre2-8-0 libicu-dev libicu72 pkgconf-bin libpkgconf3 2>&1 | grep -v "^W: Download is performed unsandboxed" || true
ls -1 ./*.deb | wc -l | xargs echo "debs in .gpu-debs:"
du -sh . | cut -f1 | xargs echo "size:"
