"""What the kernel says about a process the supervisor keeps, for the admin API."""

from __future__ import annotations

import os

__all__ = ["rss_bytes"]

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes(pid: int) -> int | None:
    """Resident memory of ``pid`` in bytes (/proc/<pid>/statm), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * _PAGE
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None  # it exited between the listing and this read: nothing to show
