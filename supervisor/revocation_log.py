"""Revocations on disk: sessions ended by their clients stay ended across restarts, and across hosts that
share a directory.

One file per day (``revoked-<secret id>-<YYYYMMDD>.log``), one line per revocation (``<expires> <sid>``),
only ever appended: a line is one ``write`` to a file opened with O_APPEND, so the supervisors of several
hosts can append to the same file. Files are read from the last offset seen (every second), so what
another host appends arrives within a second. A day's file is deleted once every session it names has
expired anyway. The secret id (a digest of the session secret) keeps gateways with different secrets apart.
"""

from __future__ import annotations

import calendar
import hashlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["RevocationLog", "default_state_dir"]

log = logging.getLogger("only1mcp.supervisor")

_DAY = 86400.0


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "only1mcp"


class RevocationLog:
    __slots__ = ("_directory", "_offsets", "_prefix", "ttl")

    def __init__(self, directory: Path, secret: bytes, ttl: float) -> None:
        self._directory = directory
        self._prefix = f"revoked-{hashlib.sha256(b'only1mcp-revocations:' + secret).hexdigest()[:12]}-"
        self.ttl = ttl
        self._offsets: dict[str, int] = {}
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _files(self) -> list[Path]:
        return sorted(p for p in self._directory.glob(f"{self._prefix}*.log") if p.is_file())

    def append(self, sid: str, expires: float, now: float | None = None) -> None:
        """Record one revocation (one write of one line, appended)."""
        day = time.strftime("%Y%m%d", time.gmtime(time.time() if now is None else now))
        path = self._directory / f"{self._prefix}{day}.log"
        line = f"{expires:.3f} {sid}\n".encode()
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, line)
        finally:
            os.close(descriptor)

    def read_new(self) -> Iterator[tuple[str, float]]:
        """Revocations appended since the last read (by this host or another), as (sid, expires)."""
        for path in self._files():
            offset = self._offsets.get(path.name, 0)
            try:
                with path.open("rb") as handle:
                    handle.seek(offset)
                    data = handle.read()
            except OSError as exc:
                log.warning("cannot read revocations from %s: %s", path, exc)
                continue
            complete = data[:data.rfind(b"\n") + 1]  # a line still being written is read next time
            self._offsets[path.name] = offset + len(complete)
            for line in complete.splitlines():
                expires, _, sid = line.decode("ascii", "replace").partition(" ")
                try:
                    yield sid.strip(), float(expires)
                except ValueError:
                    log.warning("skipped a malformed line in %s: %r", path.name, line[:80])

    def prune(self, now: float | None = None) -> int:
        """Delete the files of days whose every session has expired; returns how many."""
        now = time.time() if now is None else now
        removed = 0
        for path in self._files():
            day = path.stem.rpartition("-")[2]
            try:
                start = calendar.timegm(time.strptime(day, "%Y%m%d"))
            except ValueError:
                continue
            if start + _DAY + self.ttl < now:
                path.unlink(missing_ok=True)
                self._offsets.pop(path.name, None)
                removed += 1
        return removed
