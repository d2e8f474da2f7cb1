"""Interop peer for the RedisLock (pub/sub) tests: drives Debian's python3-portalocker 2.2.1
portalocker.RedisLock (the legacy pub/sub protocol) on python3-redis.

Usage (run by /usr/bin/python3): pubsub_py_peer.py PORT CHANNEL
Prints "READY", then obeys one command per stdin line, answering one line each:
  try              acquire(timeout=0, fail_when_locked=True)        -> "ACQUIRED" or "BUSY"
  wait SECONDS     acquire(timeout=SECONDS, check_interval=0.02)    -> "ACQUIRED" or "BUSY"
  release          release()                                        -> "RELEASED"
  exit (or EOF)    exit
A crash of portalocker's pub/sub thread (e.g. a non-ping message on the channel) interrupts the
main thread, so the peer dies and the C++ side sees EOF.
"""
import sys

import portalocker
import redis
from portalocker import exceptions


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main():
    port, channel = int(sys.argv[1]), sys.argv[2]
    lock = portalocker.RedisLock(channel, connection=redis.Redis(host="127.0.0.1", port=port))
    say("READY")
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        try:
            if cmd[0] == "try":
                lock.acquire(timeout=0.0, fail_when_locked=True)
                say("ACQUIRED")
            elif cmd[0] == "wait":
                lock.acquire(timeout=float(cmd[1]), check_interval=0.02)
                say("ACQUIRED")
            elif cmd[0] == "release":
                lock.release()
                say("RELEASED")
            elif cmd[0] == "exit":
                break
            else:
                say("ERROR unknown command")
        except exceptions.AlreadyLocked:
            say("BUSY")


if __name__ == "__main__":
    main()
