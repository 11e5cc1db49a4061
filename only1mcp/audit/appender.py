"""Appending whole lines to one file from many processes, with size-based rotation that loses none.

Every worker holds its own descriptor opened with O_APPEND and writes each line with one ``write`` call:
the kernel appends it at the end of the file under the file's lock, so lines of several processes never
interleave and the line is in the file (the page cache) when the call returns; a ``kill -9`` after it
loses nothing. (A power loss may: that would take an fsync per line, milliseconds each.)

A writer notices that the file was moved away (our own rotation in another worker, or logrotate) by
comparing the inode at ``path`` with its descriptor's before each line, and reopens ``path``: its next line
goes to the new file. Rotation itself (``path`` -> ``path.1`` -> ... -> ``path.<backups>``) happens under an
exclusive flock on ``path.lock`` and only if ``path`` is still the full file this writer holds, so two
writers never rotate twice for one full file. A line written by a writer that looked just before another
one's rename lands in ``path.1``: moved along, never lost or written twice.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["FileAppender", "check_appendable"]

_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
_MODE = 0o600  # the trail names who did what: readable by the gateway's user only


def check_appendable(path: Path) -> None:
    """OSError when this process cannot append to ``path`` (creating it if missing)."""
    os.close(os.open(path, _FLAGS, _MODE))


class FileAppender:
    """One process's writer of ``path``; ``max_bytes`` 0 never rotates."""

    __slots__ = ("_backups", "_fd", "_identity", "_lock", "_max_bytes", "_path")

    def __init__(self, path: Path, max_bytes: int = 0, backups: int = 1) -> None:
        self._path = str(path)
        self._max_bytes = max_bytes
        self._backups = backups
        self._fd = -1
        self._identity = (0, 0)
        self._lock = -1
        self._open()

    @property
    def path(self) -> str:
        return self._path

    def write(self, line: bytes) -> None:
        """Append ``line`` (one write call); OSError when it cannot be written."""
        if self._fd < 0 or self._moved():
            self._open()
        written = os.write(self._fd, line)
        while written < len(line):  # only when the disk fills up mid-line: finish it rather than tear it
            line = line[written:]
            written = os.write(self._fd, line)
        if self._max_bytes and os.lseek(self._fd, 0, os.SEEK_CUR) >= self._max_bytes:
            self._rotate()

    def close(self) -> None:
        for fd in (self._fd, self._lock):
            if fd >= 0:
                os.close(fd)
        self._fd = self._lock = -1

    def _moved(self) -> bool:
        try:
            status = os.stat(self._path)
        except FileNotFoundError:
            return True
        return (status.st_dev, status.st_ino) != self._identity

    def _open(self) -> None:
        fd = os.open(self._path, _FLAGS, _MODE)
        status = os.fstat(fd)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        self._identity = (status.st_dev, status.st_ino)

    def _rotate(self) -> None:
        if self._lock < 0:
            self._lock = os.open(self._path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _MODE)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        try:
            # Another writer may have rotated while this one waited: then only follow it to the new file.
            if self._moved():
                self._open()
            elif os.fstat(self._fd).st_size >= self._max_bytes:
                self._shift()
                self._open()
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)

    def _shift(self) -> None:
        path = self._path
        for number in range(self._backups - 1, 0, -1):
            older = f"{path}.{number}"
            if os.path.exists(older):
                os.rename(older, f"{path}.{number + 1}")  # replaces (deletes) the oldest at the top
        os.rename(path, f"{path}.1")
