#!/usr/bin/env bash
# Installs what is missing, builds the main demo (examples/cluster_cells) and runs it: without
# arguments on a simulated labelled dataset, else on the dataset given, e.g.
#   scripts/demo.sh ../shared/data/10x_pbmc_top2000
# Further arguments go to the demo (see examples/cluster_cells/main.cpp): --k 8, --out DIR, ...
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --minimal
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build --target cluster_cells
build/examples/cluster_cells/cluster_cells "$@"
