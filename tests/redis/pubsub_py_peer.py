"""Interop peer for the RedisLock (pub/sub) tests: drives Debian's python3-portalocker 2.2.1
portalocker.RedisLock (the legacy pub/sub protocol) on python3-redis.

Usage (run by /usr/bin/python3): pubsub_py_peer.py PORT CHANNEL
Prints "READY", then obeys one command per stdin line, answering one line each:
  try              acquire(timeout=0, fail_when_locked=True)        -> "ACQUIRED" or "BUSY"
  wait SECONDS     acquire(timeout=SECONDS, check_interval=0.02)    -> "ACQUIRED" or "BUSY"
  release          release()                                        -> "RELEASED"
  ping             a portalocker 4.x-style probe with redis-py: ping the channel, read one reply
                   -> "REPLY <holder_id> <mode> <protocol>" (json.loads of a protocol-1 reply),
                      "LEGACY" (a float: a legacy holder) or "NOREPLY"
  exit (or EOF)    exit
A crash of portalocker's pub/sub thread (e.g. a non-ping message on the channel) interrupts the
main thread, so the peer dies and the C++ side sees EOF.
"""
import json
import sys
import uuid

import portalocker
import redis
from portalocker import exceptions


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def ping(connection, channel):
    response_channel = "%s-%s" % (channel, uuid.uuid4().hex)
    pubsub = connection.pubsub()
    pubsub.subscribe(response_channel)
    try:
        for _ in range(100):  # the subscribe confirmation first
            message = pubsub.get_message(timeout=0.05)
            if message and message.get("type") == "subscribe":
                break
        connection.publish(channel, json.dumps({"message": "ping", "response_channel": response_channel}))
        for _ in range(100):
            message = pubsub.get_message(timeout=0.05)
            if message and message.get("type") == "message":
                data = message["data"]
                try:
                    reply = json.loads(data)
                except ValueError:
                    return "JUNK"
                if isinstance(reply, dict):
                    return "REPLY %s %s %s" % (reply.get("holder_id"), reply.get("mode"), reply.get("protocol"))
                if isinstance(reply, float):
                    return "LEGACY"
                return "JUNK"
        return "NOREPLY"
    finally:
        pubsub.close()


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
            elif cmd[0] == "ping":
                say(ping(lock.get_connection(), channel))
            elif cmd[0] == "exit":
                break
            else:
                say("ERROR unknown command")
        except exceptions.AlreadyLocked:
            say("BUSY")


if __name__ == "__main__":
    main()
