#!/usr/bin/env bash
# Installs what is missing, builds the main demo and runs it on the 10x PBMC dataset when
# ../shared/data is present (else on simulated counts). Extra arguments go to the demo, e.g. a
# dataset folder: scripts/demo.sh ../shared/data/baron_mouse1
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --minimal
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build --target count_summary
build/examples/count_summary/count_summary "$@"
