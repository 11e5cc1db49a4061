"""Where audit lines go: a file (appender.py), the local syslog socket, or standard output.

Each sink takes one whole line per ``write`` and returns once it is out of this process (in the file's page
cache, in the syslog daemon's socket queue, in stdout's pipe), so a worker killed right after loses nothing.
Writes block: an audit line that cannot be written yet (a full pipe, a syslog daemon behind) holds its
answer back rather than be dropped.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import socket
from pathlib import Path
from typing import Protocol

from only1mcp.config.audit import FACILITIES, AuditSettings

from .appender import FileAppender, check_appendable
from .moves import MoveWatch

__all__ = ["Sink", "StdoutSink", "SyslogSink", "check_destination", "describe", "open_sink"]

_SEVERITY_INFO = 6
_SYSLOG_TIMEOUT = 5.0  # seconds a line may wait for room in the syslog daemon's queue before it fails
_RECONNECT = (errno.ECONNREFUSED, errno.ENOTCONN, errno.ECONNRESET, errno.ENOENT)


class Sink(Protocol):
    def write(self, line: bytes) -> None:
        """Write one line (ending in a newline) whole; OSError when it cannot be."""

    def close(self) -> None: ...


class StdoutSink:
    """File descriptor 1, which the supervisor and every worker share (the workers inherit it).

    A write of at most PIPE_BUF bytes to a pipe is atomic; a longer line is written under an flock of
    ``lock_path``, which each process opens for itself (an flock on the inherited descriptor would not
    exclude anyone: the lock belongs to the open file description, and they all share one).
    """

    __slots__ = ("_lock", "_lock_path")

    def __init__(self, lock_path: Path) -> None:
        self._lock_path = lock_path
        self._lock = -1

    def write(self, line: bytes) -> None:
        if len(line) <= select.PIPE_BUF:
            _write_all(1, line)
            return
        if self._lock < 0:
            self._lock = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        try:
            _write_all(1, line)
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1


class SyslogSink:
    """One datagram per line to a local syslog socket (``<PRI>only1mcp-audit[pid]: {json}``); a daemon that
    restarted (a new socket at the same path) is reconnected to once per line."""

    __slots__ = ("_address", "_prefix", "_socket")

    def __init__(self, address: str, facility: str) -> None:
        self._address = address
        self._prefix = b"<%d>only1mcp-audit[%d]: " % (FACILITIES[facility] * 8 + _SEVERITY_INFO, os.getpid())
        self._socket = self._connect()

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.settimeout(_SYSLOG_TIMEOUT)
        try:
            sock.connect(self._address)
        except OSError:
            sock.close()
            raise
        return sock

    def write(self, line: bytes) -> None:
        datagram = self._prefix + line[:-1]  # syslog frames by datagram, not by newline
        try:
            self._socket.send(datagram)
        except OSError as exc:
            if exc.errno not in _RECONNECT:
                raise
            self._socket.close()
            self._socket = self._connect()
            self._socket.send(datagram)

    def close(self) -> None:
        self._socket.close()


def _write_all(fd: int, line: bytes) -> None:
    written = os.write(fd, line)
    while written < len(line):
        line = line[written:]
        written = os.write(fd, line)


def open_sink(settings: AuditSettings, runtime_dir: Path) -> Sink:
    """The sink ``settings`` name; OSError when it cannot be opened."""
    if settings.path is not None:
        return FileAppender(settings.path, settings.max_bytes, settings.backups, MoveWatch.start())
    if settings.syslog is not None:
        return SyslogSink(settings.syslog, settings.facility)
    return StdoutSink(runtime_dir / "audit-stdout.lock")


def describe(settings: AuditSettings) -> str:
    if settings.path is not None:
        return f"audit.path {settings.path}"
    if settings.syslog is not None:
        return f"audit.syslog {settings.syslog}"
    return "standard output"


def check_destination(settings: AuditSettings) -> None:
    """ValueError saying what to fix when audit is on and this process cannot write where it points."""
    if not settings.enabled:
        return
    try:
        if settings.path is not None:
            check_appendable(settings.path)
        elif settings.syslog is not None:
            SyslogSink(settings.syslog, settings.facility).close()
    except OSError as exc:
        raise ValueError(f"cannot write the audit trail to {describe(settings)}: {exc.strerror or exc}; point "
                         "it at a file in a directory this user can write, a running syslog socket, or set "
                         "audit.enabled: false") from None
