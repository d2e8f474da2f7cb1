#!/usr/bin/env bash
# Compiles every core source that a Windows build uses with the mingw-w64 cross compiler
# (syntax and types only), so that the Windows side of the platform split stays buildable.
set -euo pipefail
cd "$(dirname "$0")/../core"
cxx=x86_64-w64-mingw32-g++-posix
# Portable sources plus the Windows ones: everything in src/ except *_posix.cpp.
sources=$(ls src/*.cpp | grep -v '_posix\.cpp$')
count=0
for f in $sources; do
  "$cxx" -std=c++20 -fsyntax-only -Wall -Wextra -Werror -Iinclude "$f"
  count=$((count + 1))
done
echo "windows-check: $count core sources compile for x86_64-w64-mingw32"
