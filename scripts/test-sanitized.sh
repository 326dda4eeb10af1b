#!/usr/bin/env bash
# Builds the torch-free part of irene with clang-14, AddressSanitizer and UndefinedBehaviorSanitizer
# (float-cast-overflow and float-divide-by-zero included; -fno-sanitize-recover: the first report
# fails the test) into build-asan/, and runs its tests: every torch-free unit and CLI test (the
# CLI tests run the sanitized irene), and the fuzz regression inputs (FuzzReplay.*). CI runs it
# after the normal suite (.ci/run). Left to the normal suite: the browser test, and PredictMonotone
# (a numerical property checked at every batch 1-256 and seq 1-4096 of every built-in model: over
# 15 minutes under the sanitizers, for code the other predict tests already run sanitized).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 \
  -DIRENE_SANITIZE=ON -DIRENE_WITH_TORCH=OFF -DIRENE_BUILD_PYTHON=OFF -DIRENE_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j "$(nproc)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir build-asan --output-on-failure -j "$(nproc)" -E 'ExplainBrowser|PredictMonotone'
