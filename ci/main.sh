#!/usr/bin/env bash
# The main job: installs what is missing, builds locksmith (release), runs `locksmith probe` on
# a temporary directory (report on the console, plus JSON/JUnit/HTML in build/release/reports/),
# a short stress run with the kill nemesis, and demonstrates `locksmith run`: a holder, a
# contender that times out (exit 75), and a waiter woken the moment the lock is released.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
bash ci/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$jobs" --target locksmith
bin=$PWD/build/release/stress/locksmith
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
lock="flock:$dir/demo.lock"
reports=$PWD/build/release/reports
mkdir -p "$reports"

echo
echo "== locksmith probe (a fresh temporary directory) =="
"$bin" probe --duration 1 --json "$reports/probe.json" --junit "$reports/probe.xml" \
  --html "$reports/probe.html"

echo
echo "== locksmith stress: 4 workers, 3 s, holders SIGKILLed and SIGSTOPped inside their critical sections =="
"$bin" stress --lock "flock:$dir/stress.lock" --workers 4 --duration 3 --nemesis kill,pause \
  --json "$reports/stress.json" --html "$reports/stress.html"
echo "reports: $reports/{probe,stress}.{json,html}, $reports/probe.xml"

echo
echo "== locksmith run on $dir =="
echo "\$ locksmith run --lock $lock -- <holder: keeps the lock until told to go>"
mkfifo "$dir/go" "$dir/held"
"$bin" run --lock "$lock" --verbose -- sh -c "echo held > '$dir/held'; read _ < '$dir/go'" &
holder=$!
read -r _ <"$dir/held"
echo "holder is in its critical section"

echo "\$ locksmith run --lock $lock --timeout 0.2 -- echo never"
set +e
"$bin" run --lock "$lock" --timeout 0.2 -- echo never
rc=$?
set -e
echo "exit status $rc (75 = not acquired in time)"
[[ $rc -eq 75 ]]

echo "\$ locksmith run --lock $lock --timeout 10 -- date +%T.%N   (released 0.3 s from now)"
(sleep 0.3; date +%T.%N | sed 's/^/released at      /'; echo go >"$dir/go") &
"$bin" run --lock "$lock" --timeout 10 -- sh -c 'printf "waiter ran at    %s\n" "$(date +%T.%N)"'
wait "$holder"
echo "== done =="
