#!/bin/sh
# Configures and builds the benchmarks in Release mode (build/bench), then runs bench/compare.py:
# the C++ benchmarks and the Python (portalocker) peers in one run, printed as one table.
# Extra arguments go to compare.py (e.g. --repetitions 7 --json results.json).
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
build="$repo/build/bench"
cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLOCKSMITH_BUILD_BENCH=ON >/dev/null
cmake --build "$build" --target locksmith_bench_lock locksmith_bench_wakeup locksmith_bench_atomic
exec /usr/bin/python3 "$repo/bench/compare.py" --build-dir "$build/bench" "$@"
