#!/usr/bin/python3
"""Contended throughput of the file-protocol locks with 2, 4 and 8 processes, locksmith side by
side with the Python libraries that use the same files (flufl.lock, lockfile), in one run.

locksmith's figures come from `locksmith stress --lock KIND:PATH --workers N --hold-us 0` (its
JSON report's throughput_per_s: critical sections per second over the run, every one checked for
exclusion). The Python figures come from N processes that each loop lock/unlock for the same
time on one lock file (nothing checked). Run with Debian's /usr/bin/python3.

    /usr/bin/python3 bench/contended.py --locksmith build/release/stress/locksmith
"""

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time


def python_worker(kind, path, seconds, start, counts, index):
    if kind == "flufl.lock":
        from flufl.lock import Lock

        lock = Lock(path, lifetime=60)
        acquire, release = (lambda: lock.lock(timeout=30)), lock.unlock
    else:
        from lockfile.linklockfile import LinkLockFile
        from lockfile.mkdirlockfile import MkdirLockFile

        cls = {"lockfile.LinkLockFile": LinkLockFile,
               "lockfile.MkdirLockFile": MkdirLockFile}[kind]
        lock = cls(path, threaded=False)
        acquire, release = (lambda: lock.acquire(timeout=30)), lock.release
    start.wait(60)
    until = time.monotonic() + seconds
    n = 0
    while time.monotonic() < until:
        acquire()
        release()
        n += 1
    counts[index] = n


def python_rate(kind, procs, seconds, directory):
    path = os.path.join(directory, kind.replace(".", "-") + ".lock")
    start = multiprocessing.Barrier(procs + 1)
    counts = multiprocessing.Array("q", procs)
    workers = [multiprocessing.Process(target=python_worker,
                                       args=(kind, path, seconds, start, counts, i))
               for i in range(procs)]
    for w in workers:
        w.start()
    start.wait(60)  # a worker that died before the start breaks the barrier: no hang
    for w in workers:
        w.join(seconds + 60)
        if w.is_alive():
            w.kill()
            raise RuntimeError(f"{kind}: a worker did not finish")
    return sum(counts) / seconds


def locksmith_rate(binary, kind, procs, seconds, directory):
    report = os.path.join(directory, f"{kind}-{procs}.json")
    spec = f"{kind}:{os.path.join(directory, kind + '-' + str(procs) + '.lock')}"
    run = subprocess.run([binary, "stress", "--lock", spec, "--workers", str(procs),
                          "--duration", str(seconds), "--hold-us", "0", "--timeout", "30",
                          "--json", report, "--quiet"], capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"{spec}: exit {run.returncode}: {run.stderr.strip()}")
    with open(report) as f:
        primitive = json.load(f)["primitives"][0]
    if primitive["verdict"] != "SAFE":
        raise RuntimeError(f"{spec}: {primitive['verdict']}: {primitive['reason']}")
    return primitive["stats"]["throughput_per_s"]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--locksmith", required=True, help="the locksmith binary (release build)")
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement (default 3)")
    parser.add_argument("--procs", default="2,4,8", help="process counts (default 2,4,8)")
    parser.add_argument("--dir", help="directory for the lock files (default: a temporary one)")
    args = parser.parse_args()
    procs = [int(p) for p in args.procs.split(",")]
    rows = [("locksmith link: (flufl.lock protocol)", lambda n, d: locksmith_rate(
                args.locksmith, "link", n, args.seconds, d)),
            ("flufl.lock 5.0.1 Lock", lambda n, d: python_rate(
                "flufl.lock", n, args.seconds, d)),
            ("locksmith mkdir: (lockfile protocol)", lambda n, d: locksmith_rate(
                args.locksmith, "mkdir", n, args.seconds, d)),
            ("lockfile 0.12 MkdirLockFile", lambda n, d: python_rate(
                "lockfile.MkdirLockFile", n, args.seconds, d)),
            ("lockfile 0.12 LinkLockFile", lambda n, d: python_rate(
                "lockfile.LinkLockFile", n, args.seconds, d)),
            ("locksmith dotlock: (liblockfile protocol)", lambda n, d: locksmith_rate(
                args.locksmith, "dotlock", n, args.seconds, d)),
            ("locksmith pidfile: (lockfile PIDLockFile protocol)", lambda n, d: locksmith_rate(
                args.locksmith, "pidfile", n, args.seconds, d)),
            ("locksmith flock: (reference)", lambda n, d: locksmith_rate(
                args.locksmith, "flock", n, args.seconds, d))]
    print(f"contended lock+unlock cycles per second, {args.seconds:g} s per cell, "
          f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}")
    print("| lock | " + " | ".join(f"{n} processes" for n in procs) + " |")
    print("|---|" + "---|" * len(procs))
    with tempfile.TemporaryDirectory(prefix="locksmith-contended-", dir=args.dir) as d:
        for name, measure in rows:
            cells = []
            for n in procs:
                try:
                    cells.append(f"{measure(n, d):,.0f}")
                except Exception as e:  # one failing cell must not hide the rest
                    cells.append(f"error: {e}")
            print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
