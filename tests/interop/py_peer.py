#!/usr/bin/python3
"""The Python side of the locksmith interop tests (run with /usr/bin/python3).

Takes one lock with Debian's python3-portalocker (or Python's fcntl.lockf, which is what newer
portalocker's LockfLocker does), says what happened, then holds the lock until told otherwise:

  py_peer.py version
  py_peer.py portalocker PATH exclusive|shared TIMEOUT|fail   portalocker.Lock
  py_peer.py lockf PATH exclusive|shared                      fcntl.lockf(f, LOCK_xx | LOCK_NB)
  py_peer.py sem DIR NAME MAX TIMEOUT                         portalocker.BoundedSemaphore

TIMEOUT is portalocker's timeout in seconds; "fail" means fail_when_locked=True. A positive
TIMEOUT prints "WAITING" first. Result lines, on the protocol channel (the original stdout):
  VERSION V FILE
  LOCKED                  (portalocker, lockf)
  LOCKED PATH             (sem: the slot file portalocker locked)
  BUSY EXCEPTION ERRNO ELAPSED_MS
  ERROR MESSAGE           (exit 2)
While holding, stdin lines are commands: "release" -> "RELEASED"; "exit" or end of input exits.

Debian's portalocker 2.2.1 BoundedSemaphore prints debug lines on stdout, so this script moves
sys.stdout to stderr and writes the protocol to a private duplicate of the original stdout.
"""

import errno
import os
import select
import sys
import time

COMMAND_WAIT = 90.0  # seconds; an abandoned peer exits instead of lingering
EXIT_ERROR = 2
EXIT_ABANDONED = 3

_PROTO = os.dup(1)
os.dup2(2, 1)  # print() from libraries now lands on stderr


def say(line):
    data = (line + "\n").encode()
    while data:
        n = os.write(_PROTO, data)
        data = data[n:]


def fail(message):
    say("ERROR " + message.replace("\n", " "))
    sys.exit(EXIT_ERROR)


def import_portalocker():
    # portalocker imports redis (for RedisLock, unused here) when it can; that import costs
    # ~0.25 s per peer. Blocking it makes portalocker set RedisLock = None, nothing else changes.
    sys.modules.setdefault("redis", None)
    try:
        import portalocker
    except ImportError as exc:
        fail("cannot import portalocker (%s): install the Debian package python3-portalocker "
             "and run the tests with /usr/bin/python3 (running %s)" % (exc, sys.executable))
    return portalocker


def os_error_of(exc):
    """portalocker 2.2.1 wraps the OSError of flock() in one or two exception layers."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError):
            return exc
        nested = [a for a in getattr(exc, "args", ()) if isinstance(a, BaseException)]
        exc = nested[0] if nested else (exc.__cause__ or exc.__context__)
        seen += 1
    return None


def errno_name(exc):
    err = os_error_of(exc)
    if err is None or err.errno is None:
        return "-"
    return errno.errorcode.get(err.errno, str(err.errno))


def elapsed_ms(start):
    return "%.3f" % ((time.monotonic() - start) * 1000.0)


_buffer = b""


def read_command(deadline):
    global _buffer
    while True:
        nl = _buffer.find(b"\n")
        if nl >= 0:
            line, _buffer = _buffer[:nl], _buffer[nl + 1:]
            return line.decode()
        left = deadline - time.monotonic()
        if left <= 0:
            sys.stderr.write("py_peer: no command within the bound; exiting\n")
            sys.exit(EXIT_ABANDONED)
        ready, _, _ = select.select([0], [], [], left)
        if not ready:
            continue
        chunk = os.read(0, 256)
        if not chunk:
            return None
        _buffer += chunk


def serve(release):
    deadline = time.monotonic() + COMMAND_WAIT
    held = True
    while True:
        command = read_command(deadline)
        if command is None or command == "exit":
            return
        if command == "release" and held:
            release()
            held = False
            say("RELEASED")
            continue
        fail("unexpected command %r" % command)


def parse_timeout(text):
    """-> (timeout, fail_when_locked) for portalocker."""
    if text == "fail":
        return 0.0, True
    return float(text), False


def main(argv):
    if len(argv) < 2:
        fail("usage: see the module docstring")
    kind = argv[1]

    if kind == "version":
        portalocker = import_portalocker()
        say("VERSION %s %s" % (portalocker.__version__, portalocker.__file__))
        return

    if kind == "portalocker" and len(argv) == 5:
        portalocker = import_portalocker()
        path, mode = argv[2], argv[3]
        timeout, fail_when_locked = parse_timeout(argv[4])
        if mode == "exclusive":
            flags = portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING
        elif mode == "shared":
            flags = portalocker.LockFlags.SHARED | portalocker.LockFlags.NON_BLOCKING
        else:
            fail("bad mode %r" % mode)
        lock = portalocker.Lock(path, mode="a", timeout=timeout,
                                fail_when_locked=fail_when_locked, flags=flags)
        if timeout > 0:
            say("WAITING")
        start = time.monotonic()
        try:
            lock.acquire()
        except (portalocker.AlreadyLocked, portalocker.LockException) as exc:
            say("BUSY %s %s %s" % (type(exc).__name__, errno_name(exc), elapsed_ms(start)))
            return
        say("LOCKED")
        serve(lock.release)
        return

    if kind == "lockf" and len(argv) == 4:
        import fcntl
        path, mode = argv[2], argv[3]
        if mode == "exclusive":
            op = fcntl.LOCK_EX
        elif mode == "shared":
            op = fcntl.LOCK_SH
        else:
            fail("bad mode %r" % mode)
        # Read and write access: a POSIX shared lock needs a readable fd, an exclusive one a
        # writable fd.
        fh = open(path, "a+")
        start = time.monotonic()
        try:
            fcntl.lockf(fh, op | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                say("BUSY %s %s %s" % (type(exc).__name__, errno_name(exc), elapsed_ms(start)))
                return
            fail("lockf: %s" % exc)
        say("LOCKED")

        def release():
            fcntl.lockf(fh, fcntl.LOCK_UN)
            fh.close()

        serve(release)
        return

    if kind == "sem" and len(argv) == 6:
        portalocker = import_portalocker()
        directory, name, maximum = argv[2], argv[3], int(argv[4])
        timeout, fail_when_locked = parse_timeout(argv[5])
        sem = portalocker.BoundedSemaphore(maximum, name=name, directory=directory,
                                           timeout=timeout)
        if timeout > 0:
            say("WAITING")
        start = time.monotonic()
        try:
            # fail_when_locked is accepted (and ignored) by 2.2.1; newer versions honour it.
            lock = sem.acquire(timeout=timeout, fail_when_locked=fail_when_locked)
        except (portalocker.AlreadyLocked, portalocker.LockException) as exc:
            say("BUSY %s %s %s" % (type(exc).__name__, errno_name(exc), elapsed_ms(start)))
            return
        if lock is None:
            fail("BoundedSemaphore.acquire returned no lock")
        say("LOCKED %s" % os.path.abspath(str(lock.filename)))
        serve(sem.release)
        return

    fail("bad arguments %r" % (argv[1:],))


if __name__ == "__main__":
    main(sys.argv)
