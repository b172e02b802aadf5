#!/usr/bin/env bash
# Installs everything cellkit's build, tests, benchmarks and reference scripts need, from Debian 12
# packages. Idempotent: packages already present are skipped, so a second run does nothing.
#   scripts/install-deps.sh            build + test dependencies (C++ and the Python references)
#   scripts/install-deps.sh --minimal  only what the C++ build needs (no Python peers)
set -euo pipefail

build_packages=(
  build-essential cmake ninja-build pkg-config git
  clang clang-format libomp-dev
  libeigen3-dev libxtensor-dev libxsimd-dev libboost-graph-dev
  doctest-dev libbenchmark-dev libopenblas-dev zlib1g-dev libhdf5-dev
)
python_packages=(
  python3 python3-numpy python3-scipy python3-sklearn python3-pot python3-torch python3-mpmath
  python3-h5py python3-anndata
)

wanted=("${build_packages[@]}")
if [[ "${1:-}" != "--minimal" ]]; then
  wanted+=("${python_packages[@]}")
fi

missing=()
for p in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#wanted[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
