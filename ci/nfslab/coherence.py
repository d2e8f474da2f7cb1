#!/usr/bin/python3
"""Cache coherence of one small file between two mounts of one NFS export (run in the lab guest).

usage: coherence.py DIR_A DIR_B [ROUNDS]   (DIR_A and DIR_B: the same directory via two mounts)

Each round writes a new same-size value through mount A, then reads it through mount B, in one
of several ways, and counts the rounds where B read an older value. This is the access pattern of
the harness's guarded file (a counter rewritten in place, size unchanged), so it tells which
discipline makes that evidence trustworthy across NFS clients.
"""
import fcntl
import mmap
import os
import sys

a_dir, b_dir = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 200
SIZE = 4096  # one page: O_DIRECT needs aligned buffers on some filesystems


def value(i):
    return f"{i:010d}".encode().ljust(SIZE, b" ")


def aligned(data):
    buf = mmap.mmap(-1, SIZE)
    buf.write(data)
    return buf


def run(name, write, read):
    path = "guard-" + "".join(c if c.isalnum() else "-" for c in name)
    with open(os.path.join(a_dir, path), "wb") as f:
        f.write(value(0))
    state = {}
    stale = 0
    for i in range(1, rounds + 1):
        write(os.path.join(a_dir, path), i, state)
        if read(os.path.join(b_dir, path), state)[:10] != value(i)[:10]:
            stale += 1
    for fd in state.values():
        if isinstance(fd, int):
            os.close(fd)
    print(f"{name:34s} stale reads {stale:4d} of {rounds}")
    return stale


def held(key, path, state, flags=os.O_RDWR):
    if key not in state:
        state[key] = os.open(path, flags)
    return state[key]


def w_held(path, i, st):  # the harness today: one descriptor for the whole run, pwrite
    os.pwrite(held("w", path, st), value(i), 0)


def w_held_fsync(path, i, st):
    fd = held("w", path, st)
    os.pwrite(fd, value(i), 0)
    os.fsync(fd)


def w_open_close(path, i, st):  # close-to-open: open, write, close (close flushes)
    fd = os.open(path, os.O_RDWR)
    os.pwrite(fd, value(i), 0)
    os.close(fd)


def w_direct(path, i, st):
    os.pwritev(held("w", path, st, os.O_RDWR | os.O_DIRECT), [aligned(value(i))], 0)


def r_held(path, st):
    return os.pread(held("r", path, st), SIZE, 0)


def r_held_lock_other(path, st):  # lock a different file first, as the harness does (x.lock)
    lk = held("l", path + ".lock", st, os.O_RDWR | os.O_CREAT)
    fcntl.lockf(lk, fcntl.LOCK_EX)
    data = os.pread(held("r", path, st), SIZE, 0)
    fcntl.lockf(lk, fcntl.LOCK_UN)
    return data


def r_held_lock_same(path, st):  # fcntl lock on the file itself: the NFS client revalidates
    fd = held("r", path, st)
    fcntl.lockf(fd, fcntl.LOCK_EX)
    data = os.pread(fd, SIZE, 0)
    fcntl.lockf(fd, fcntl.LOCK_UN)
    return data


def r_open_close(path, st):
    fd = os.open(path, os.O_RDONLY)
    data = os.pread(fd, SIZE, 0)
    os.close(fd)
    return data


def r_direct(path, st):
    buf = aligned(b"")
    os.preadv(held("r", path, st, os.O_RDONLY | os.O_DIRECT), [buf], 0)
    return bytes(buf)


def w_locked_same(path, i, st):
    fd = held("w", path, st)
    fcntl.lockf(fd, fcntl.LOCK_EX)
    os.pwrite(fd, value(i), 0)
    fcntl.lockf(fd, fcntl.LOCK_UN)  # unlock flushes dirty pages first


print(f"{a_dir} -> {b_dir}, {rounds} rounds, {SIZE}-byte value rewritten in place")
run("held fds (harness today)", w_held, r_held)
run("held fds, fsync, lock another file", w_held_fsync, r_held_lock_other)
run("close-to-open (open/write/close)", w_open_close, r_open_close)
run("fcntl lock on the file itself", w_locked_same, r_held_lock_same)
run("O_DIRECT both sides", w_direct, r_direct)
