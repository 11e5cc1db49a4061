"""One process's metric values, kept in memory-mapped files that prometheus-client's multiprocess
collector reads: ``<kind>_<pid>.db`` in the metrics directory, one file per kind and process.

Written here rather than through prometheus-client's own value class: its ``inc`` takes a lock, checks
for a fork and looks the entry up by its JSON key on every call (1.07 us per counter increment, 2.14 us
per histogram observation on the 2-core box); a ``Cell`` knows where its value lies and stores that one
double (an aligned 8-byte store: a concurrent reader sees the old or the new value, never a mix). The
layout is the one prometheus-client documents for its files: a 4-byte used length, 4 bytes of padding,
then entries of a 4-byte key length, the UTF-8 key padded to 8 bytes, a double value and a double
timestamp (always 0 here). Keys come from prometheus-client's ``mmap_key``.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import struct
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.mmap_dict import mmap_key

__all__ = ["Cell", "MetricFile", "directory_lock"]

# Taken shared by every reading of the directory, exclusively while a file's entries are rewritten or a dead
# process's files are folded into the archive: a reader never sees a half-rewritten file, nor both a dead
# process's file and the archive that already holds its totals. Not a *.db file: the collector skips it.
_LOCK = ".lock"

_INITIAL_SIZE = 1 << 16
_USED = struct.Struct("i")
_ENTRY_VALUES = struct.Struct("dd")
_pack_values = _ENTRY_VALUES.pack


class MetricFile:
    """The entries of one kind (``counter``, ``histogram``, ``gauge_livesum``) for one process. Not thread
    safe: a process records from its event loop only."""

    __slots__ = ("_cells", "_file", "_maps", "_positions", "_used", "map", "path", "values")

    def __init__(self, directory: Path, kind: str, pid: int | str) -> None:
        self.path = directory / f"{kind}_{pid}.db"
        # every mapping made, kept open: a cell writes through the one it was made with, and a larger
        # mapping of the same file shares its pages
        self._maps: list[tuple[mmap.mmap, memoryview]] = []
        self._cells: dict[str, Cell] = {}  # every cell handed out, by key: re-pointed when entries move
        self._open()

    def _open(self) -> None:
        # "a+b": a pid reused by a later process continues that file's totals, so a sum over files still
        # never goes down
        self._file = open(self.path, "a+b")  # noqa: SIM115 -- the mapping lives as long as this object
        size = os.fstat(self._file.fileno()).st_size
        if size == 0:
            self._file.truncate(_INITIAL_SIZE)
            size = _INITIAL_SIZE
        self._map(size)
        self._used = _USED.unpack_from(self.map, 0)[0] or 8
        self._positions: dict[str, int] = dict(self._entries())
        self._write_used()

    def _map(self, size: int) -> None:
        self.map = mmap.mmap(self._file.fileno(), size)
        self.values = memoryview(self.map).cast("d")  # the file as doubles: a value at byte p is values[p // 8]
        self._maps.append((self.map, self.values))

    def _entries(self) -> list[tuple[str, int]]:
        entries: list[tuple[str, int]] = []
        position = 8
        while position < self._used:
            length = _USED.unpack_from(self.map, position)[0]
            key = bytes(self.map[position + 4:position + 4 + length]).decode()
            position += 4 + length + (8 - (length + 4) % 8)
            entries.append((key, position))
            position += 16
        return entries

    def _write_used(self) -> None:
        self.map[0:4] = _USED.pack(self._used)

    def cell(self, metric: str, sample: str, labelnames: tuple[str, ...], labelvalues: tuple[str, ...],
             documentation: str) -> Cell:
        """The cell of one sample, created (at zero) if this process never wrote it."""
        key = mmap_key(metric, sample, list(labelnames), list(labelvalues), documentation)
        cell = self._cells.get(key)
        if cell is None:
            position = self._positions.get(key)
            if position is None:
                position = self._append(key)
            cell = self._cells[key] = Cell(self.values, position // 8, self.values[position // 8])
        return cell

    def remove(self, keys: set[str]) -> None:
        """Drop these entries: the file is rewritten with the others, which keep their values, and every cell
        handed out for them is pointed at its entry's new place. The caller holds ``directory_lock``
        exclusively (a reader must not see the file half rewritten); a removed key's cell must not be used."""
        kept = [(key, self.values[position // 8]) for key, position in self._positions.items() if key not in keys]
        if len(kept) == len(self._positions):
            return
        self._used = 8
        self._positions = {}
        for key, value in kept:
            self.values[self._append(key) // 8] = value
        self._write_used()  # also when nothing is kept
        for key in keys:
            self._cells.pop(key, None)
        for key, cell in self._cells.items():
            cell.values = self.values  # the newest mapping covers every entry
            cell.index = self._positions[key] // 8

    def add(self, key: str, amount: float) -> None:
        """Add ``amount`` to the entry ``key`` (made at zero if missing): how a dead process's totals are kept."""
        position = self._positions.get(key)
        if position is None:
            position = self._append(key)
        self.values[position // 8] += amount

    def entries(self) -> list[tuple[str, float]]:
        """(key, value) of every entry."""
        return [(key, self.values[position // 8]) for key, position in self._positions.items()]

    def _append(self, key: str) -> int:
        encoded = key.encode()
        padded = encoded + b" " * (8 - (len(encoded) + 4) % 8)
        entry = _USED.pack(len(encoded)) + padded + _pack_values(0.0, 0.0)
        while self._used + len(entry) > len(self.map):
            self._grow()
        self.map[self._used:self._used + len(entry)] = entry
        self._used += len(entry)
        self._write_used()  # after the entry: a reader never sees a length that covers unwritten bytes
        position = self._used - 16
        self._positions[key] = position
        return position

    def _grow(self) -> None:
        size = len(self.map) * 2
        self._file.truncate(size)
        self._map(size)

    def close(self) -> None:
        for mapping, values in self._maps:
            values.release()
            mapping.close()
        self._maps.clear()
        self._file.close()


@contextlib.contextmanager
def directory_lock(directory: Path, how: int) -> Iterator[bool]:
    """The metrics directory's lock taken ``how`` (fcntl.LOCK_SH or LOCK_EX, maybe | LOCK_NB); yields whether
    it was."""
    with open(directory / _LOCK, "a+b") as lock:
        try:
            fcntl.flock(lock, how)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class Cell:
    """One sample's value in this process. ``add`` and ``set`` write it through at once: a scrape by any
    process, at any moment, sees every call this one has recorded. The value is also kept here, so a write
    is one store (reading a double back through the memoryview costs as much again); a sample therefore has
    one Cell per process, which its family's cache of label children keeps."""

    __slots__ = ("index", "value", "values")

    def __init__(self, values: memoryview, index: int, value: float) -> None:
        self.values = values  # the file as doubles, through a mapping that covers this cell
        self.index = index  # of the value among them
        self.value = value

    def add(self, amount: float = 1.0) -> None:
        self.value = value = self.value + amount
        self.values[self.index] = value

    def set(self, value: float) -> None:
        self.value = value
        self.values[self.index] = value
