#!/usr/bin/env bash
# Proves the three ways of consuming cellkit: install + find_package, add_subdirectory, FetchContent.
# Usage: tests/consumer/run.sh [work_dir]   (default: a fresh temporary directory)
set -euo pipefail
source_dir=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-$(mktemp -d)}
generator=()
command -v ninja > /dev/null && generator=(-G Ninja)

echo "== install cellkit into $work/prefix"
cmake -S "$source_dir" -B "$work/cellkit-build" "${generator[@]}" -DCELLKIT_BUILD_TESTS=OFF \
  -DCELLKIT_BUILD_BENCHMARKS=OFF -DCELLKIT_BUILD_EXAMPLES=OFF -DCMAKE_INSTALL_PREFIX="$work/prefix" > /dev/null
cmake --install "$work/cellkit-build" > /dev/null

for mode in find_package add_subdirectory fetchcontent; do
  echo "== consumer via $mode"
  cmake -S "$source_dir/tests/consumer" -B "$work/consumer-$mode" "${generator[@]}" -DCELLKIT_CONSUMER_MODE=$mode \
    -DCMAKE_PREFIX_PATH="$work/prefix" -DCELLKIT_SOURCE_DIR="$source_dir" -DCELLKIT_BUILD_TESTS=OFF \
    -DCELLKIT_BUILD_BENCHMARKS=OFF -DCELLKIT_BUILD_EXAMPLES=OFF > /dev/null
  cmake --build "$work/consumer-$mode" > /dev/null
  "$work/consumer-$mode/app"
done
echo "consumer: 3 passed, 0 failed"
