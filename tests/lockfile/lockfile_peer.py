"""Peer for the locksmith lockfile interop tests (run by /usr/bin/python3).

usage: lockfile_peer.py KIND PATH TIMEOUT [--keep]
  KIND: mkdir | pid | link; TIMEOUT: seconds, or "none" (wait forever).
Prints "locked UNIQUE_NAME" or "busy"/"timeout"/"failed MSG", then (when locked) waits for a line
on stdin and releases ("released" or "unlock-error CLASS"); with --keep it exits still holding.
usage: lockfile_peer.py names PATH  -> prints lockfile's names and the parts they are built from.
usage: lockfile_peer.py release KIND PATH -> tries to release a lock it does not hold.
"""
import os
import sys
import threading

from lockfile import AlreadyLocked, LockFailed, LockTimeout, UnlockError
from lockfile.linklockfile import LinkLockFile
from lockfile.mkdirlockfile import MkdirLockFile
from lockfile.pidlockfile import PIDLockFile

KINDS = {"mkdir": MkdirLockFile, "pid": PIDLockFile, "link": LinkLockFile}


def say(*words):
    sys.stdout.write(" ".join(str(w) for w in words) + "\n")
    sys.stdout.flush()


def main(argv):
    if argv[0] == "names":
        path = argv[1]
        m = MkdirLockFile(path)
        u = MkdirLockFile(path, threaded=False)
        say("lock_file", m.lock_file)
        say("hostname", m.hostname)
        say("tname", m.tname)
        say("pid", m.pid)
        say("ident", "%x" % (threading.current_thread().ident & 0xffffffff))
        say("unique", os.path.basename(m.unique_name))
        say("unique_unthreaded", os.path.basename(u.unique_name))
        return 0
    if argv[0] == "release":
        lock = KINDS[argv[1]](argv[2])
        try:
            lock.release()
        except UnlockError as e:
            say("unlock-error", type(e).__name__)
            return 0
        say("released")
        return 0
    kind, path, timeout = argv[0], argv[1], argv[2]
    keep = "--keep" in argv
    timeout = None if timeout == "none" else float(timeout)
    lock = KINDS[kind](path)
    try:
        lock.acquire(timeout=timeout)
    except LockTimeout:
        say("timeout")
        return 0
    except AlreadyLocked:
        say("busy")
        return 0
    except LockFailed as e:
        say("failed", e)
        return 0
    say("locked", os.path.basename(lock.unique_name))
    if keep:
        return 0
    sys.stdin.readline()
    try:
        lock.release()
    except UnlockError as e:
        say("unlock-error", type(e).__name__)
        return 0
    say("released")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
