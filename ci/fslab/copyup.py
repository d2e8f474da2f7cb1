#!/usr/bin/python3
"""Does a lock taken on a lower-layer file of an overlayfs survive the file's copy-up?

copyup.py OVERLAY_DIR UPPER_DIR OUT_TSV

OVERLAY_DIR is the overlay mount's directory holding files lower-KIND and lower-KIND-2 (KIND:
flock, fcntl, ofd) that exist only in the lower layer (UPPER_DIR is the same directory in the
upper layer). For each lock kind, on lower-KIND:
  1. the holder opens the file read-only through the overlay (no copy-up yet) and takes the
     strongest lock a read-only descriptor allows (flock LOCK_EX; fcntl and OFD: a read lock);
     a contender opens the file read-only too, before the copy-up;
  2. the holder opens the file again read-write (this copies it up; the upper file appears) and
     writes to it, keeping both descriptors open (closing one would drop an fcntl lock);
  3. a fresh process opens the file read-write through the overlay and tries a non-blocking
     exclusive lock; so does the contender through its descriptor from before the copy-up;
     a third process tries the same on the upper file directly (not through the overlay);
  4. the holder reads through its read-only descriptor from before the copy-up (old or new data?).
On lower-KIND-2 the copy-up is the contender's: the holder locks through a read-only descriptor,
then a fresh process opens the file read-write (copying it up), writes, and tries the lock.
Each outcome is one line of OUT_TSV: kind, check, result, detail. Every wait is bounded: a child
that does not answer within 10 s is killed and reported as "hang".
"""
import fcntl
import os
import struct
import sys
import time

F_OFD_GETLK, F_OFD_SETLK = 36, 37  # linux/fcntl.h; Python's fcntl module has them only from 3.9
OFD_GETLK = getattr(fcntl, "F_OFD_GETLK", F_OFD_GETLK)
OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", F_OFD_SETLK)
LIMIT_S = 10.0


def flock_struct(kind):
    # struct flock on x86_64 Linux: short l_type, short l_whence, off_t l_start, off_t l_len,
    # pid_t l_pid (0 for OFD locks), padding.
    return struct.pack("hhqqi4x", kind, os.SEEK_SET, 0, 0, 0)


def lock(fd, kind, exclusive, wait=False):
    """Takes the lock; returns "granted" or "refused" (busy); raises on any other error."""
    try:
        if kind == "flock":
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB))
        else:
            cmd = fcntl.F_SETLK if kind == "fcntl" else OFD_SETLK
            fcntl.fcntl(fd, cmd, flock_struct(fcntl.F_WRLCK if exclusive else fcntl.F_RDLCK))
        return "granted"
    except OSError as e:
        if e.errno in (11, 13):  # EAGAIN, EACCES: held by someone else
            return "refused"
        raise


def in_child(fn):
    """Runs fn() in a forked child; returns its one-line answer, or "hang" after LIMIT_S."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            answer = fn()
        except OSError as e:
            answer = f"error: {e.strerror} (errno {e.errno})"
        os.write(w, answer.encode())
        os._exit(0)
    os.close(w)
    deadline = time.monotonic() + LIMIT_S
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.01)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(r)
        return "hang"
    answer = os.read(r, 4096).decode()
    os.close(r)
    return answer


def main():
    ovl, upper, out = sys.argv[1], sys.argv[2], sys.argv[3]
    rows = []

    def row(kind, check, result, detail):
        rows.append((kind, check, result, detail))
        print(f"copyup {kind:6} {check:27} {result:12} {detail}")

    for kind in ("flock", "fcntl", "ofd"):
        name = f"lower-{kind}"
        path, upper_path = os.path.join(ovl, name), os.path.join(upper, name)
        if os.path.exists(upper_path):
            row(kind, "setup", "error", f"{upper_path} exists before the test: not a lower-layer file")
            continue
        ro = os.open(path, os.O_RDONLY)
        first = lock(ro, kind, exclusive=(kind == "flock"))
        held = "LOCK_EX" if kind == "flock" else "F_RDLCK"
        # The contender's descriptor from before the copy-up (it refers to the lower file).
        early = os.open(path, os.O_RDONLY)
        rw = os.open(path, os.O_RDWR)  # copy-up
        copied = os.path.exists(upper_path)
        os.pwrite(rw, b"written through the overlay\n", 0)
        os.fsync(rw)
        row(kind, "copy_up", "yes" if copied else "no",
            f"holder: {held} {first} on a read-only fd, then open(O_RDWR) + write; "
            f"upper file {'appeared' if copied else 'did not appear'}")

        def fresh_opener(p=path, k=kind):
            fd = os.open(p, os.O_RDWR)
            return lock(fd, k, exclusive=True)

        def early_opener(fd=early, k=kind):
            # An exclusive fcntl/OFD lock needs a writable fd; the early fd is read-only, so
            # it asks for what it can: flock LOCK_EX, fcntl/OFD a read lock would not conflict
            # with the holder's read lock, so test F_GETLK instead (does it see the holder?).
            if k == "flock":
                return lock(fd, k, exclusive=True)
            cmd = fcntl.F_GETLK if k == "fcntl" else OFD_GETLK
            res = fcntl.fcntl(fd, cmd, flock_struct(fcntl.F_WRLCK))
            l_type = struct.unpack("hhqqi4x", res)[0]
            return "sees holder" if l_type != fcntl.F_UNLCK else "sees no lock"

        def upper_opener(p=upper_path, k=kind):
            fd = os.open(p, os.O_RDWR)
            return lock(fd, k, exclusive=True)

        verdict = {"granted": "not-excluded", "refused": "excluded"}
        a = in_child(fresh_opener)
        row(kind, "fresh_opener_after_copy_up", verdict.get(a, a),
            f"new process, open(O_RDWR) through the overlay, non-blocking exclusive lock: {a}")
        a = in_child(early_opener)
        row(kind, "opener_before_copy_up", {"sees holder": "excluded", "sees no lock": "not-excluded"}.get(a, verdict.get(a, a)),
            f"process that opened the file before the copy-up (lower file): "
            f"{'non-blocking LOCK_EX' if kind == 'flock' else 'F_GETLK for a write lock'}: {a}")
        a = in_child(upper_opener)
        row(kind, "upper_file_directly", verdict.get(a, a),
            f"new process, open(O_RDWR) of the upper file itself (not through the overlay): {a}")
        data = os.pread(ro, 64, 0).decode(errors="replace").strip()
        row(kind, "old_fd_reads", "new" if data.startswith("written") else "old",
            f"holder's read-only fd from before the copy-up reads {data!r}")
        for fd in (rw, early, ro):
            os.close(fd)

        # The contender copies the file up while the holder's lock is on the lower file.
        path2, upper2 = path + "-2", upper_path + "-2"
        ro = os.open(path2, os.O_RDONLY)
        first = lock(ro, kind, exclusive=(kind == "flock"))

        def copying_opener(p=path2, up=upper2, k=kind):
            fd = os.open(p, os.O_RDWR)
            copied = os.path.exists(up)
            os.pwrite(fd, b"written by the contender\n", 0)
            return f"{lock(fd, k, exclusive=True)} (upper file {'appeared' if copied else 'missing'})"

        a = in_child(copying_opener)
        result = a.split(" ")[0]
        row(kind, "contender_copies_up", verdict.get(result, result),
            f"holder: {held} {first} on a read-only fd; a new process opens O_RDWR (copy-up), "
            f"writes, then tries a non-blocking exclusive lock: {a}")
        os.close(ro)

    with open(out, "w") as f:
        f.write("kind\tcheck\tresult\tdetail\n")
        for r in rows:
            f.write("\t".join(r) + "\n")


if __name__ == "__main__":
    main()
