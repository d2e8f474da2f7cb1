#!/usr/bin/env bash
# Builds tests/package/consumer against locksmith: MODE=install (cmake --install + find_package),
# subdirectory (add_subdirectory of the source tree) or pkgconfig (the installed .pc file).
set -euo pipefail
mode=$1 source_dir=$2 build_dir=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
consumer=$source_dir/tests/package/consumer
case $mode in
  install)
    cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
    cmake -S "$consumer" -B "$work/build" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
    ;;
  subdirectory)
    cmake -S "$consumer" -B "$work/build" -G Ninja -DLOCKSMITH_CONSUME=subdirectory \
      -DLOCKSMITH_SOURCE_DIR="$source_dir" >/dev/null
    # A subproject must not build locksmith's tests, benchmarks or install rules.
    if grep -q 'locksmith_unit\|benchmark' "$work/build/build.ninja"; then
      echo "add_subdirectory pulled in tests or benchmarks" >&2
      exit 1
    fi
    ;;
  pkgconfig)
    cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
    pc_dir=$(dirname "$(find "$work/prefix" -name locksmith.pc)")
    mkdir -p "$work/build"
    # shellcheck disable=SC2046
    c++ -o "$work/build/consumer" "$consumer/main.cpp" \
      $(PKG_CONFIG_PATH=$pc_dir pkg-config --cflags --libs locksmith)
    ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
if [[ $mode != pkgconfig ]]; then cmake --build "$work/build" >/dev/null; fi
out=$("$work/build/consumer" "$work/lockfile")
[[ $out == ok ]] || { echo "consumer printed '$out'" >&2; exit 1; }
echo "$mode: ok"
