#!/usr/bin/python3
"""Runs the locksmith C++ benchmarks and their Python peers (portalocker) in one go and prints one
table of medians with the ratios against the raw system calls.

Run with Debian's /usr/bin/python3 (python3-portalocker 2.2.1). The C++ binaries must have been
built in Release mode (bench/compare.sh configures, builds and calls this script).

Ratios:
  throughput rows: raw C time / implementation time (1.00x = as fast as raw C; target >= 0.9x,
                   atomic replace >= 0.95x);
  latency rows:    p50 wake-up latency (target <= 50 us) and p50 / raw C blocking flock's p50.
"""

import argparse
import contextlib
import datetime
import fcntl
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import portalocker

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RAW_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
PAYLOAD = b"x" * 4096
SYS_CLOCK_NANOSLEEP = 230  # x86_64; used only to see that a polling waiter sleeps
SYS_FLOCK = 73


# --- C++ benchmarks ---------------------------------------------------------------------------

def find_exe(build_dir, name):
    for d in (build_dir, os.path.join(build_dir, "bench")):
        exe = os.path.join(d, "locksmith_bench_" + name)
        if os.path.exists(exe):
            return exe
    raise SystemExit("no locksmith_bench_%s in %s: build first (bench/compare.sh)" % (name, build_dir))


def run_cpp(build_dir, name, min_time, env_extra):
    """One run of one benchmark binary (every benchmark once, in random order).
    Returns (context, {benchmark: {"us": real time in us, counters...}})."""
    cmd = [find_exe(build_dir, name), "--benchmark_format=json",
           "--benchmark_enable_random_interleaving=true", "--benchmark_min_time=%g" % min_time]
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    out = subprocess.run(cmd, env=dict(os.environ, **env_extra), check=True,
                         stdout=subprocess.PIPE).stdout
    report = json.loads(out)
    results = {}
    for b in report["benchmarks"]:
        if "error_message" in b:
            raise RuntimeError("%s: %s" % (b["name"], b["error_message"]))
        scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[b["time_unit"]]
        value = {"us": b["real_time"] * scale}
        for counter in ("p50_us", "p90_us", "p99_us", "max_us", "raw_us", "locksmith_us", "ratio",
                        "raw_p50_us", "raw_p90_us", "raw_p99_us", "raw_max_us"):
            if counter in b:
                value[counter] = b[counter]
        results[b["run_name"].split("/")[0]] = value
    return report["context"], results


# --- Python peers -----------------------------------------------------------------------------

def time_loop(body, min_time):
    """Median-free single measurement: seconds per call of body(n) running >= min_time."""
    n = 16
    while True:
        t0 = time.perf_counter_ns()
        body(n)
        dt = time.perf_counter_ns() - t0
        if dt >= min_time * 1e9 or n >= 1 << 24:
            return dt / n / 1e3  # us per iteration
        n = max(n * 2, int(n * min_time * 1e9 * 1.2 / max(dt, 1)))


def py_fd_raw(path):
    fd = os.open(path, RAW_OPEN_FLAGS, 0o644)

    def body(n):
        for _ in range(n):
            fcntl.flock(fd, fcntl.LOCK_EX)
            fcntl.flock(fd, fcntl.LOCK_UN)
    return body, lambda: os.close(fd)


def py_fd_portalocker(path):
    fh = open(path, "a")

    def body(n):
        for _ in range(n):
            portalocker.lock(fh, portalocker.LockFlags.EXCLUSIVE)
            portalocker.unlock(fh)
    return body, fh.close


def py_path_raw(path):
    def body(n):
        for _ in range(n):
            fd = os.open(path, RAW_OPEN_FLAGS, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
    return body, None


def py_path_portalocker_reused(path):
    lock = portalocker.Lock(path)

    def body(n):
        for _ in range(n):
            lock.acquire()
            lock.release()
    return body, None


def py_path_portalocker_constructed(path):
    def body(n):
        for _ in range(n):
            lock = portalocker.Lock(path)
            lock.acquire()
            lock.release()
    return body, None


def py_atomic_raw(directory):
    """The raw C sequence in Python: durable replace (file fsync, rename, directory fsync)."""
    dest = os.path.join(directory, "py_atomic_raw")
    counter = [0]

    def body(n):
        for _ in range(n):
            counter[0] += 1
            temp = os.path.join(directory, ".py_atomic_raw.%d.tmp" % counter[0])
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW,
                         0o644)
            os.write(fd, PAYLOAD)
            os.fsync(fd)
            os.rename(temp, dest)
            os.close(fd)
            dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            os.fsync(dfd)
            os.close(dfd)
    return body, None


def py_atomic_portalocker(directory):
    """portalocker.open_atomic: refuses an existing destination, so every call writes a new name;
    it fsyncs the data but not the directory. The names are removed after the timed loop."""
    created = []
    counter = [0]

    def body(n):
        for _ in range(n):
            counter[0] += 1
            dest = os.path.join(directory, "py_atomic_pl.%d" % counter[0])
            with portalocker.open_atomic(dest) as fh:
                fh.write(PAYLOAD)
            created.append(dest)

    def cleanup():
        for p in created:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)
    return body, cleanup


PY_THROUGHPUT = [
    # (case, label, factory, kind) kind: "file" (gets a path) or "dir" (gets the directory)
    ("fd", "Python fcntl.flock", py_fd_raw, "file"),
    ("fd", "portalocker.lock/unlock", py_fd_portalocker, "file"),
    ("path", "Python os.open+flock+close", py_path_raw, "file"),
    ("path", "portalocker.Lock reused", py_path_portalocker_reused, "file"),
    ("path", "portalocker.Lock per iteration", py_path_portalocker_constructed, "file"),
    ("atomic", "Python raw replace (durable)", py_atomic_raw, "dir"),
    ("atomic", "portalocker.open_atomic", py_atomic_portalocker, "dir"),
]


def run_py_round(directory, min_time, atomic_min_time):
    """Every Python benchmark once, in random order. Returns {index: us per iteration}."""
    order = list(range(len(PY_THROUGHPUT)))
    random.shuffle(order)
    result = {}
    for i in order:
        case, _, factory, kind = PY_THROUGHPUT[i]
        target = directory if kind == "dir" else os.path.join(directory, "py_" + case)
        body, cleanup = factory(target)
        try:
            result[i] = time_loop(body, atomic_min_time if case == "atomic" else min_time)
        finally:
            if cleanup:
                cleanup()
    return result


def proc_state(tid):
    """(syscall number or None, state letter) of thread `tid` of this process."""
    try:
        with open("/proc/self/task/%d/syscall" % tid) as f:
            first = f.read().split()[0]
        with open("/proc/self/task/%d/stat" % tid) as f:
            stat = f.read()
    except OSError:
        return None, "?"
    nr = int(first) if first.lstrip("-").isdigit() else None
    return nr, stat[stat.rindex(")") + 2]


def wait_until_asleep_in(tid, nr, limit=5.0):
    give_up = time.monotonic() + limit
    while time.monotonic() < give_up:
        got, state = proc_state(tid)
        if got == nr and state == "S":
            return True
        time.sleep(0.00002)
    return False


def py_wakeup(path, handoffs, waiter_kind, check_interval=None):
    """Wake-up latency of a Python waiter. The holder thread has its own open file; it releases
    only once the waiter sleeps (in flock for the blocking waiter; between polls for portalocker,
    then after a further random delay in [0, 2 * check_interval) so the release falls at a random
    point of the poll cycle). Returns sorted latencies in us."""
    start = threading.Event()
    held = threading.Event()
    done = threading.Event()
    stamp = [0]
    errors = []
    waiter_tid = threading.get_native_id()

    def holder():
        fd = os.open(path, RAW_OPEN_FLAGS, 0o644)
        try:
            for _ in range(handoffs):
                if not start.wait(5):
                    errors.append("waiter never started")
                    return
                start.clear()
                fcntl.flock(fd, fcntl.LOCK_EX)
                held.set()
                if waiter_kind == "flock":
                    asleep = wait_until_asleep_in(waiter_tid, SYS_FLOCK)
                else:
                    asleep = wait_until_asleep_in(waiter_tid, SYS_CLOCK_NANOSLEEP)
                    time.sleep(random.uniform(0, 2 * check_interval))
                if not asleep:
                    errors.append("waiter never slept")
                stamp[0] = time.monotonic_ns()
                fcntl.flock(fd, fcntl.LOCK_UN)
                if not done.wait(15):
                    errors.append("waiter never finished")
                    return
                done.clear()
        finally:
            os.close(fd)

    t = threading.Thread(target=holder)
    t.start()
    latencies = []
    if waiter_kind == "flock":
        wfd = os.open(path, RAW_OPEN_FLAGS, 0o644)
    lock = portalocker.Lock(path, timeout=10, check_interval=check_interval) \
        if waiter_kind == "portalocker" else None
    try:
        for _ in range(handoffs):
            start.set()
            if not held.wait(5):
                break
            held.clear()
            if lock is None:
                fcntl.flock(wfd, fcntl.LOCK_EX)
                t1 = time.monotonic_ns()
                fcntl.flock(wfd, fcntl.LOCK_UN)
            else:
                lock.acquire()
                t1 = time.monotonic_ns()
                lock.release()
            latencies.append((t1 - stamp[0]) / 1e3)
            done.set()
            if errors:
                break
    finally:
        t.join(30)
        if waiter_kind == "flock":
            os.close(wfd)
    if errors:
        raise RuntimeError("; ".join(errors))
    return sorted(latencies)


def pct(sorted_values, p):
    return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))]


# --- Report -----------------------------------------------------------------------------------

CPP_ROWS = [
    # (case, label, benchmark, raw twin)
    ("fd", "raw C flock(LOCK_EX)+flock(LOCK_UN)", "BM_fd_raw_flock", "BM_fd_raw_flock"),
    ("fd", "locksmith::lock+unlock (flock)", "BM_fd_locksmith_flock", "BM_fd_raw_flock"),
    ("fd", "raw C flock(LOCK_EX|LOCK_NB)+unlock", "BM_fd_raw_flock_nb", "BM_fd_raw_flock_nb"),
    ("fd", "locksmith::lock(ex|non_blocking)+unlock", "BM_fd_locksmith_flock_nb",
     "BM_fd_raw_flock_nb"),
    ("fd", "raw C fcntl(F_SETLKW)+F_UNLCK", "BM_fd_raw_fcntl_posix", "BM_fd_raw_fcntl_posix"),
    ("fd", "locksmith::lock+unlock (posix)", "BM_fd_locksmith_posix", "BM_fd_raw_fcntl_posix"),
    ("fd", "raw C fcntl(F_OFD_SETLKW)+F_UNLCK", "BM_fd_raw_fcntl_ofd", "BM_fd_raw_fcntl_ofd"),
    ("fd", "locksmith::lock+unlock (ofd)", "BM_fd_locksmith_ofd", "BM_fd_raw_fcntl_ofd"),
    ("path", "raw C open+flock+flock+close", "BM_path_raw_flock", "BM_path_raw_flock"),
    ("path", "FileLock reused: lock()+unlock()", "BM_path_filelock_reused", "BM_path_raw_flock"),
    ("path", "FileLock per iteration: ctor+lock()+unlock()", "BM_path_filelock_constructed",
     "BM_path_raw_flock"),
    ("path", "FileLock reused: acquire()+release()", "BM_path_filelock_acquire",
     "BM_path_raw_flock"),
    ("atomic", "raw C durable replace", "BM_atomic_raw_replace", "BM_atomic_raw_replace"),
    ("atomic", "AtomicFile replace + commit()", "BM_atomic_locksmith_replace",
     "BM_atomic_raw_replace"),
    ("atomic", "raw C replace, no fsync", "BM_atomic_raw_replace_nosync",
     "BM_atomic_raw_replace_nosync"),
    ("atomic", "AtomicFile replace, sync=false", "BM_atomic_locksmith_replace_nosync",
     "BM_atomic_raw_replace_nosync"),
]

# Benchmarks that alternate raw and locksmith in one loop and report the ratio themselves.
PAIRED_ROWS = [
    ("fd", "paired loop: locksmith::lock+unlock vs raw C (flock)", "BM_paired_fd_flock"),
    ("fd", "paired loop: locksmith (posix) vs raw C fcntl", "BM_paired_fd_posix"),
    ("fd", "paired loop: locksmith (ofd) vs raw C fcntl", "BM_paired_fd_ofd"),
    ("path", "paired loop: FileLock reused vs raw C", "BM_paired_path_filelock_reused"),
    ("path", "paired loop: FileLock per iteration vs raw C",
     "BM_paired_path_filelock_constructed"),
    ("atomic", "paired loop: AtomicFile vs raw C, durable", "BM_atomic_paired_replace"),
    ("atomic", "paired loop: AtomicFile vs raw C, no fsync", "BM_atomic_paired_replace_nosync"),
]

# Raw blocking flock and a locksmith waiter alternating under one holder.
WAKE_PAIRED_ROWS = [
    ("paired: lock_until(now+10s) vs raw C flock", "BM_wakeup_paired_lock_until"),
    ("paired: FileLock::try_lock_for(10s) vs raw C flock", "BM_wakeup_paired_try_lock_for"),
]

WAKE_ROWS = [
    ("raw C blocking flock(LOCK_EX)", "BM_wakeup_raw_flock"),
    ("locksmith::lock (blocking, no deadline)", "BM_wakeup_locksmith_lock"),
    ("locksmith::lock_until(now+10s)", "BM_wakeup_locksmith_lock_until"),
    ("FileLock::try_lock_for(10s)", "BM_wakeup_filelock_try_lock_for"),
    ("raw C blocking fcntl(F_OFD_SETLKW)", "BM_wakeup_raw_ofd"),
    ("locksmith::lock_until(ofd, now+10s)", "BM_wakeup_locksmith_ofd_lock_until"),
]

TARGETS = {"fd": 0.9, "path": 0.9, "atomic": 0.95}
CASE_TITLES = {
    "fd": "1. lock+unlock, open fd",
    "path": "2. open+lock+unlock+close",
    "wakeup": "3. wake-up latency p50 / p90 / p99",
    "atomic": "4. atomic replace, 4 KiB",
}
RAW_C = {"fd": "BM_fd_raw_flock", "path": "BM_path_raw_flock", "atomic": "BM_atomic_raw_replace"}


def fmt_us(us):
    return "%.3g us" % us if us < 100 else "%.0f us" % us


def median_of(samples, name, field="us"):
    return statistics.median(r[name][field] for r in samples)


def ratio_range(values):
    m = statistics.median(values)
    if len(values) == 1:
        return "%.2fx" % m
    return "%.2fx (%.2f-%.2f)" % (m, min(values), max(values))


def build_table(cpp, py, py_wake, ctx, args):
    """cpp: per-round {benchmark: sample}; py: per-round {index: us}; medians over rounds."""
    lines = []
    lines.append("| case | implementation | median | vs raw C: median (min-max over rounds) "
                 "| target | met |")
    lines.append("|---|---|---|---|---|---|")

    def row(case, label, value, ratio, target="", met=""):
        lines.append("| %s | %s | %s | %s | %s | %s |"
                     % (CASE_TITLES[case], label.replace("|", "\\|"), value, ratio, target, met))

    def throughput_rows(case):
        for c, label, name, twin in CPP_ROWS:
            if c != case:
                continue
            ratios = [r[twin]["us"] / r[name]["us"] for r in cpp]
            if name == twin:
                row(case, label, fmt_us(median_of(cpp, name)), "1 (reference)")
                continue
            m = statistics.median(ratios)
            row(case, label, fmt_us(median_of(cpp, name)), ratio_range(ratios),
                ">= %.2fx" % TARGETS[case], "yes" if m >= TARGETS[case] else "NO")
        for c, label, name in PAIRED_ROWS:
            if c == case:
                ratios = [r[name]["ratio"] for r in cpp]
                m = statistics.median(ratios)
                row(case, label, "%s vs %s" % (fmt_us(median_of(cpp, name, "locksmith_us")),
                                               fmt_us(median_of(cpp, name, "raw_us"))),
                    ratio_range(ratios), ">= %.2fx" % TARGETS[case],
                    "yes" if m >= TARGETS[case] else "NO")
        for i, (c, label, _, _) in enumerate(PY_THROUGHPUT):
            if c == case:
                ratios = [cr[RAW_C[case]]["us"] / pr[i] for cr, pr in zip(cpp, py)]
                row(case, label, fmt_us(statistics.median(pr[i] for pr in py)),
                    ratio_range(ratios))

    def wake_rows():
        raw_p50 = median_of(cpp, "BM_wakeup_raw_flock", "p50_us")
        for label, name in WAKE_ROWS:
            p = [median_of(cpp, name, f) for f in ("p50_us", "p90_us", "p99_us")]
            is_raw = label.startswith("raw C")
            row("wakeup", label, " / ".join(fmt_us(v) for v in p),
                "%.2fx latency" % (p[0] / raw_p50), "" if is_raw else "p50 <= 50 us",
                "" if is_raw else ("yes" if p[0] <= 50 else "NO"))
        for label, name in WAKE_PAIRED_ROWS:
            p = [median_of(cpp, name, f) for f in ("p50_us", "p90_us", "p99_us")]
            raw = [median_of(cpp, name, "raw_" + f) for f in ("p50_us", "p90_us", "p99_us")]
            ratios = [r[name]["p50_us"] / r[name]["raw_p50_us"] for r in cpp]
            row("wakeup", label, "%s vs raw %s" % (" / ".join(fmt_us(v) for v in p),
                                                  " / ".join(fmt_us(v) for v in raw)),
                ratio_range(ratios) + " latency", "p50 <= 50 us",
                "yes" if p[0] <= 50 else "NO")
        for label, lat in py_wake:
            p = [pct(lat, q) for q in (0.5, 0.9, 0.99)]
            row("wakeup", "%s (%d handoffs)" % (label, len(lat)),
                " / ".join(fmt_us(v) for v in p), "%.0fx latency" % (p[0] / raw_p50)
                if p[0] / raw_p50 >= 10 else "%.2fx latency" % (p[0] / raw_p50))

    throughput_rows("fd")
    throughput_rows("path")
    wake_rows()
    throughput_rows("atomic")
    head = ("locksmith vs raw system calls vs portalocker %s -- %s, %d CPUs, Linux %s, "
            "libbenchmark build: %s, bench dir filesystem: %s. Medians over %d rounds; a round "
            "runs every C++ benchmark once (%g s each, atomic %g s; random order) and every "
            "Python peer once. C++ wake-up: %d handoffs per round, percentiles = median of the "
            "rounds' percentiles."
            % (portalocker.__version__, datetime.date.today().isoformat(), ctx.get("num_cpus", 0),
               platform.release(), ctx.get("library_build_type"), ctx.get("locksmith_bench_fs"),
               len(cpp), args.min_time, args.atomic_min_time, args.handoffs))
    foot = ("Throughput rows: vs raw C = raw C time / this time, per round (higher is faster; "
            "Python rows use the same round's raw C run). Latency rows: p50 / raw C blocking "
            "flock p50 (lower is better).")
    return "\n".join([head, ""] + lines + ["", foot])


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build", "bench", "bench"),
                    help="directory holding the locksmith_bench_* binaries")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.5,
                    help="seconds per benchmark per round (lock and Python throughput)")
    ap.add_argument("--atomic-min-time", type=float, default=1.0,
                    help="seconds per atomic-replace benchmark per round")
    ap.add_argument("--handoffs", type=int, default=1000, help="C++ wake-up handoffs per round")
    ap.add_argument("--py-handoffs", type=int, default=300,
                    help="Python blocking-flock and check_interval=0.01 handoffs")
    ap.add_argument("--py-default-handoffs", type=int, default=40,
                    help="portalocker handoffs with the default check_interval=0.25 s")
    ap.add_argument("--smoke", action="store_true", help="tiny counts: checks that all runs work")
    ap.add_argument("--json", help="also write every sample here")
    args = ap.parse_args()
    if args.smoke:
        args.rounds, args.min_time, args.atomic_min_time, args.handoffs = 1, 0.01, 0.01, 20
        args.py_handoffs, args.py_default_handoffs = 10, 2

    # Scratch files go on the build disk (not a tmpfs /tmp) unless $LOCKSMITH_BENCH_DIR says.
    base = os.environ.get("LOCKSMITH_BENCH_DIR") or args.build_dir
    os.makedirs(base, exist_ok=True)
    work = tempfile.mkdtemp(prefix="locksmith-compare.", dir=base)
    env = {"LOCKSMITH_BENCH_DIR": work, "LOCKSMITH_BENCH_HANDOFFS": str(args.handoffs)}
    ctx, cpp, py = {}, [], []
    try:
        for n in range(args.rounds):
            print("+ round %d/%d" % (n + 1, args.rounds), file=sys.stderr, flush=True)
            round_results = {}
            binaries = [("lock", args.min_time), ("atomic", args.atomic_min_time),
                        ("wakeup", args.min_time)]
            random.shuffle(binaries)
            for name, min_time in binaries:
                ctx, r = run_cpp(args.build_dir, name, min_time, env)
                round_results.update(r)
            cpp.append(round_results)
            py.append(run_py_round(work, args.min_time, args.atomic_min_time))
        print("+ Python wake-up (portalocker %s)" % portalocker.__version__, file=sys.stderr,
              flush=True)
        wake_path = os.path.join(work, "py_wake")
        py_wake = [
            ("Python blocking fcntl.flock", py_wakeup(wake_path, args.py_handoffs, "flock")),
            ("portalocker.Lock check_interval=0.25 (default)",
             py_wakeup(wake_path, args.py_default_handoffs, "portalocker", 0.25)),
            ("portalocker.Lock check_interval=0.01",
             py_wakeup(wake_path, args.py_handoffs, "portalocker", 0.01)),
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(build_table(cpp, py, py_wake, ctx, args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"context": ctx, "cpp_rounds": cpp,
                       "python_rounds": [{PY_THROUGHPUT[i][1]: v for i, v in r.items()}
                                         for r in py],
                       "python_wakeup_us": {label: lat for label, lat in py_wake}}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
