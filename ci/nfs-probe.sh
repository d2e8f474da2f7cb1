#!/usr/bin/env bash
# locksmith on real kernel NFS (v3 and v4.2), in the qemu guest of ci/nfslab/. Operator/developer
# script: too slow for ci/test.sh (about 15 minutes under software emulation).
#
# On the host:   bash ci/nfs-probe.sh
#   prepares the lab (ci/nfslab/setup.sh), copies build/release/stress/locksmith (or
#   $LOCKSMITH_BIN) into the lab's run directory, boots the guest with the network-namespace
#   client and runs this script there; then writes docs/nfs/ (summary.md, console.txt, the JSON
#   reports; HTML reports stay in /var/cache/locksmith-nfslab/run/results/).
# In the guest (NFSLAB_GUEST=1, set by guest-init.sh): for each pair of mounts of one export
#   v3    /mnt/v3a   + /mnt/v3b     NFSv3, two mounts of one client (the second nosharecache)
#   v4.2  /mnt/v4.2a + /mnt/v4.2b   NFSv4.2, two mounts of one client
#   c2    /mnt/v4.2a + /mnt/c2v4.2  NFSv4.2, two clients (the second in its own network namespace)
#   v3one, v4.2one                  one mount only (/mnt/v3a, /mnt/v4.2a), for comparison
# runs `locksmith probe DIR --peer-dir PEER`, then `locksmith stress` with half the workers on
# each mount for link, flock, fcntl, mkdir and dotlock, and fcntl once more with the kill/pause
# nemesis; for two mounts also ci/nfslab/coherence.py (how stale a file rewritten in place reads
# across them). The split stress run is a two-host rendezvous run, one controller per mount; both
# run in the guest, so the rendezvous directory (and the histories) are on the guest's local /tmp:
# through NFS, a controller would see the other's ready file only after the attribute cache
# expires (up to 30 s), and the run's clock starts before the rendezvous.
# Env: NFS_PROBE_DURATION (seconds per probe primitive and per stress run, default 5),
#      NFS_PROBE_PAIRS (default "v3 v3one v4.2 v4.2one c2").
# Exit: 0 all SAFE, 1 a violation was seen, 2 an error or a timeout.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
dur=${NFS_PROBE_DURATION:-5}

if [[ ${NFSLAB_GUEST:-0} != 1 ]]; then
  set -e
  cache=${NFSLAB_CACHE:-/var/cache/locksmith-nfslab}
  run=${NFSLAB_RUN:-$cache/run}
  bin=${LOCKSMITH_BIN:-$repo/build/release/stress/locksmith}
  if [[ ! -x $bin ]]; then
    (cd "$repo" && cmake --preset release >/dev/null && cmake --build --preset release --target locksmith -j2)
  fi
  bash "$repo/ci/nfslab/setup.sh"
  mkdir -p "$run"
  rm -rf "$run/results"
  cp "$bin" "$run/locksmith" # the guest runs this copy: a rebuild meanwhile cannot disturb it
  status=0
  NFSLAB_C2=1 NFSLAB_TIMEOUT=${NFSLAB_TIMEOUT:-2400} bash "$repo/ci/nfslab/run-vm.sh" \
    "NFS_PROBE_DURATION=$dur NFS_PROBE_PAIRS='${NFS_PROBE_PAIRS:-v3 v3one v4.2 v4.2one c2}' bash $repo/ci/nfs-probe.sh" ||
    status=$?
  # Into the repo: small files only (see summarize.py); the HTML stays in the run directory.
  docs=$repo/docs/nfs
  rm -rf "$docs"
  mkdir -p "$docs"
  /usr/bin/python3 "$repo/ci/nfslab/summarize.py" "$run/results" "$docs" || status=2
  echo "nfs-probe: exit $status; results in $repo/docs/nfs/ (HTML in $run/results/)"
  exit "$status"
fi

L=/mnt/lab/locksmith
out=/mnt/lab/results
mkdir -p "$out"
worst=0
# note NAME RC SECONDS: a line of summary.tsv; the script exits with the worst (error > violation).
note() {
  printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$out/summary.tsv"
  echo "== $1: exit $2 after $3 s"
  local r=$2
  ((r > 1)) && r=2 # a timeout (124) or a crash counts as an error
  ((r > worst)) && worst=$r
}
# Every run is bounded: a holder blocked forever on NFS would otherwise hang the guest.
bounded() { timeout -k 10 $((dur * 10 + 120)) "$@"; }
mounts() {
  case $1 in
    v3) echo /mnt/v3a /mnt/v3b ;;
    v4.2) echo /mnt/v4.2a /mnt/v4.2b ;;
    c2) echo /mnt/v4.2a /mnt/c2v4.2 ;;
    v3one) echo /mnt/v3a /mnt/v3a ;;
    v4.2one) echo /mnt/v4.2a /mnt/v4.2a ;;
  esac
}

printf 'run\texit\tseconds\n' >"$out/summary.tsv"
uname -a >"$out/guest-kernel.txt"
grep -E ' nfs4? ' /proc/mounts >"$out/mounts.txt"

for pair in ${NFS_PROBE_PAIRS:-v3 v3one v4.2 v4.2one c2}; do
  read -r a b < <(mounts "$pair")
  if ! mountpoint -q "$b"; then
    echo "== $pair: $b is not mounted, skipped" | tee -a "$out/skipped.txt"
    continue
  fi
  if [[ $a != "$b" ]]; then
    mkdir -p "$a/coherence-$pair"
    bounded /usr/bin/python3 "$repo/ci/nfslab/coherence.py" "$a/coherence-$pair" "$b/coherence-$pair" 100 \
      >"$out/coherence-$pair.txt" 2>&1
    note "coherence-$pair" $? 0
    cat "$out/coherence-$pair.txt"
  fi
  name=probe-$pair
  mkdir -p "$a/$name"
  SECONDS=0
  peer=(--peer-dir "$b/$name")
  [[ $a == "$b" ]] && peer=()
  bounded "$L" probe "$a/$name" "${peer[@]}" --duration "$dur" \
    --json "$out/$name.json" --html "$out/$name.html" >"$out/$name.txt" 2>&1
  note "$name" $? $SECONDS
  cat "$out/$name.txt"

  for spec in link flock fcntl mkdir dotlock fcntl+nemesis; do
    kind=${spec%+*}
    extra=()
    [[ $spec == *+nemesis ]] && extra=(--nemesis "kill,pause")
    name=stress-$pair-${spec/+/-}
    dir=$name; mkdir -p "$a/$dir"
    SECONDS=0
    # Host 0 on the first mount, host 1 on the second; each controller has 2 workers.
    pids=()
    for i in 0 1; do
      m=$a; ((i == 1)) && m=$b
      bounded "$L" stress --lock "$kind:$m/$dir/x.lock" --workers 2 --duration "$dur" "${extra[@]}" \
        --rendezvous "/tmp/$name" --hosts 2 --host-index $i --no-progress \
        --json "$out/$name.host$i.json" >"$out/$name.host$i.txt" 2>&1 &
      pids+=($!)
    done
    rc0=0 rc1=0
    wait "${pids[0]}" || rc0=$?
    wait "${pids[1]}" || rc1=$?
    bounded "$L" check "/tmp/$name" --json "$out/$name.json" --html "$out/$name.html" >"$out/$name.txt" 2>&1
    rc=$?
    ((rc0 > rc || rc1 > rc)) && rc=$((rc0 > rc1 ? rc0 : rc1))
    note "$name" $rc $SECONDS
    cat "$out/$name.txt"
  done
done
column -t "$out/summary.tsv"
exit "$worst"
