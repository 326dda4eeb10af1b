#!/usr/bin/env bash
# Installs everything irene needs to build, test and run on Debian 12 (as root or with sudo).
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Toolchain and libraries (the Python module: pybind11, pytest, pandas for its tests; the fuzzers
# and the sanitizer build: clang-14 with libFuzzer); libopenblas0-openmp makes libtorch's BLAS calls ~30x faster than
# the reference BLAS that libtorch-dev would otherwise pull in; libtcmalloc-minimal4 is the measuring
# helper's allocator (src/irene/measure/allocator.hpp).
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential cmake ninja-build ccache pkg-config \
  libtorch-dev libopenblas0-openmp libtcmalloc-minimal4 \
  libeigen3-dev nlohmann-json3-dev libcli11-dev libfmt-dev libcpp-httplib-dev \
  libgtest-dev libgmock-dev \
  python3 python3-dev pybind11-dev python3-pybind11 python3-pytest python3-pandas \
  clang-14 libfuzzer-14-dev libclang-rt-14-dev \
  chromium \
  >/dev/null
# The report's chart library (d3, embedded at build time) and the browser test's driver
# (playwright-core, using Debian's chromium above) come from npm, pinned by web/package-lock.json.
(cd "$(dirname "$0")/../web" && npm ci --no-audit --no-fund >/dev/null)
echo "install-deps: done"
