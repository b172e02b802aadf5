#!/usr/bin/env bash
# Installs what is missing, builds cellkit's tests, examples and benchmarks with warnings as errors,
# and runs the whole test suite. Idempotent; safe to run again (reuses ./build).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCELLKIT_WARNINGS_AS_ERRORS=ON
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"
