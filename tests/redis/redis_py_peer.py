"""Interop peer for the RedisLease tests: drives Debian's python3-redis (redis.lock.Lock).

Usage (run by /usr/bin/python3): redis_py_peer.py PORT KEY
Prints "READY", then obeys one command per stdin line, answering one line each:
  try                   Lock.acquire(blocking=False)   -> "ACQUIRED <token>" or "BUSY"
  wait SECONDS          Lock.acquire(blocking_timeout)  -> "ACQUIRED <token>" or "BUSY"
  release               Lock.release()                  -> "RELEASED", "NOT_OWNED" or "ERROR <cls>"
  release_with TOKEN    lock.local.token = TOKEN; release() (same answers)
  owned                 Lock.owned()                    -> "1" or "0"
  exit (or EOF)         exit
"""
import sys

import redis
from redis.exceptions import LockError, LockNotOwnedError
from redis.lock import Lock


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def release(lock):
    try:
        lock.release()
        say("RELEASED")
    except LockNotOwnedError:
        say("NOT_OWNED")
    except LockError as e:
        say("ERROR %s" % type(e).__name__)


def main():
    port, key = int(sys.argv[1]), sys.argv[2]
    r = redis.Redis(host="127.0.0.1", port=port)
    lock = Lock(r, key, timeout=30, sleep=0.05)
    say("READY")
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "try":
            ok = lock.acquire(blocking=False)
            say("ACQUIRED %s" % lock.local.token.decode() if ok else "BUSY")
        elif cmd[0] == "wait":
            ok = lock.acquire(blocking=True, blocking_timeout=float(cmd[1]))
            say("ACQUIRED %s" % lock.local.token.decode() if ok else "BUSY")
        elif cmd[0] == "release":
            release(lock)
        elif cmd[0] == "release_with":
            lock.local.token = cmd[1].encode()
            release(lock)
        elif cmd[0] == "owned":
            say("1" if lock.owned() else "0")
        elif cmd[0] == "exit":
            break
        else:
            say("ERROR unknown command")


if __name__ == "__main__":
    main()
