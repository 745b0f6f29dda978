"""The local store's keeper: stops its redis-server once no client has been connected for a while.

Run as a script next to the server it watches (``python keeper.py HOME SOCKET LINGER_S``), started
detached by :mod:`redtick.store`. It imports only the standard library, so it starts in a fraction
of a second, and holds ``HOME/keeper.lock`` for its whole life: a second keeper of the same store
exits at once, and a free lock tells :mod:`redtick.store` that no keeper runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["KEEPER_NAME", "command", "keeper_running", "main", "start_lock"]

KEEPER_NAME = b"redtick-keeper"
POLL_S = 0.25


@contextlib.contextmanager
def start_lock(home: Path) -> Iterator[None]:
    """Held while a server is started or stopped, so two processes never do either at once."""
    with open(home / "store.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def keeper_running(home: Path) -> bool:
    """True if a keeper holds ``home``'s keeper lock."""
    with open(home / "keeper.lock", "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def command(sock: socket.socket, *args: bytes) -> bytes:
    """Send one command and return its reply's payload (a status line or a bulk string)."""
    sock.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
    data = b""
    while b"\r\n" not in data:
        data += _recv(sock)
    head, _, rest = data.partition(b"\r\n")
    if head[:1] != b"$":
        return head
    size = int(head[1:])
    while len(rest) < size + 2:
        rest += _recv(sock)
    return rest[:size]


def _recv(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionError("the server closed the connection")
    return chunk


def _other_clients(sock: socket.socket) -> int:
    """Clients connected other than keepers."""
    listing = command(sock, b"CLIENT", b"LIST")
    return sum(1 for line in listing.splitlines() if b" name=" + KEEPER_NAME + b" " not in line)


def main(home: Path, socket_path: str, linger_s: float) -> None:
    """Watch the server; SHUTDOWN (which flushes the append-only file) after ``linger_s`` s with no client."""
    with open(home / "keeper.lock", "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another keeper watches this store
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30.0)
            sock.connect(socket_path)
            command(sock, b"CLIENT", b"SETNAME", KEEPER_NAME)
            idle_since = None
            while True:
                now = time.monotonic()
                if _other_clients(sock) > 0:
                    idle_since = None
                elif idle_since is None:
                    idle_since = now
                elif now - idle_since >= linger_s:
                    # Under the start lock, so a process about to connect waits and then starts a new server.
                    with start_lock(home):
                        if _other_clients(sock) == 0:
                            with contextlib.suppress(ConnectionError):
                                command(sock, b"SHUTDOWN")
                            return
                    idle_since = None
                time.sleep(POLL_S)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]))
    os._exit(0)
