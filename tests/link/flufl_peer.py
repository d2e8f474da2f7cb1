"""Interop peer for the LinkLock tests: drives Debian's python3-flufl.lock.

Usage (run by /usr/bin/python3):
  flufl_peer.py info                          -> "INFO <socket.getfqdn()>"
  flufl_peer.py expiration PATH               -> "EXPIRATION_US <flufl's expiration, in µs>"
  flufl_peer.py hold PATH LIFETIME            -> lock (10 s timeout), "LOCKED <host> <pid> <claim>"
  flufl_peer.py try PATH TIMEOUT LIFETIME     -> "LOCKED ..." as hold, or "TIMEOUT" followed by
                                                 "DETAILS <host> <pid> <lockfile>",
                                                 "STATE <name>", "EXPIRATION <mtime>", then exits
While holding, stdin commands: "is_locked" -> "1"/"0"; "release" -> "RELEASED" or
"ERROR <exception class>"; "exit" or EOF -> exit without unlocking.
"""
import os
import socket
import sys
from datetime import timedelta

from flufl.lock import Lock, TimeOutError


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def hold_loop(lock):
    say("LOCKED %s %d %s" % (lock.hostname, os.getpid(), lock._claimfile))
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "is_locked":
            say("1" if lock.is_locked else "0")
        elif cmd == "release":
            try:
                lock.unlock()
                say("RELEASED")
            except Exception as error:  # report, do not die
                say("ERROR %s" % type(error).__name__)
        else:
            break


def main(argv):
    if argv[1] == "info":
        say("INFO %s" % socket.getfqdn())
        return 0
    path = argv[2]
    if argv[1] == "expiration":
        # flufl's own reading of a lock's expiry (st_mtime as a float), to the microsecond.
        say("EXPIRATION_US %d" % round(Lock(path).expiration.timestamp() * 1e6))
        return 0
    if argv[1] == "hold":
        lock = Lock(path, lifetime=int(argv[3]))
        lock.lock(timeout=timedelta(seconds=10))
        hold_loop(lock)
        return 0
    if argv[1] == "try":
        lock = Lock(path, lifetime=int(argv[4]))
        try:
            lock.lock(timeout=timedelta(seconds=float(argv[3])))
        except TimeOutError:
            say("TIMEOUT")
            host, pid, lockfile = lock.details
            say("DETAILS %s %d %s" % (host, pid, lockfile))
            say("STATE %s" % lock.state.name)
            say("EXPIRATION %d" % int(lock.expiration.timestamp()))
            return 0
        hold_loop(lock)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
