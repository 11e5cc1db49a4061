"""The HTTP server's size and time limits, and the open-file budget its connection cap is clamped to."""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass, replace

__all__ = ["HttpLimits", "connection_budget", "raise_open_file_limit"]

log = logging.getLogger("only1mcp.http")

_MIN_RESERVE = 256


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """What a client may take of one worker: time to send a head or a body, time idle between requests or
    leaving answers unread, connections, and the size of a request head and of a body the server reads."""

    header_timeout: float = 20.0
    body_timeout: float = 60.0
    keepalive_timeout: float = 75.0
    send_timeout: float = 60.0
    max_connections: int = 10_000
    max_header_count: int = 100
    max_header_size: int = 32_768
    max_body_size: int = 4 * 1024 * 1024

    @property
    def tick(self) -> float:
        """Seconds between two sweeps of the connections: a quarter of the shortest timeout (so a
        connection is closed at most 25% late), at most 1 s, at least 50 ms."""
        shortest = min(self.header_timeout, self.body_timeout, self.keepalive_timeout, self.send_timeout)
        return min(1.0, max(0.05, shortest / 4))

    def clamped(self, budget: int) -> HttpLimits:
        """These limits with ``max_connections`` at most ``budget``."""
        return self if self.max_connections <= budget else replace(self, max_connections=budget)


def raise_open_file_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; returns the soft limit now in force.

    Each client connection holds a descriptor, and the default soft limit (often 1024) runs out long
    before memory or CPU does.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d (%s); client connections are capped "
                        "lower", soft, hard, exc)
            return soft
        return hard
    return soft


def connection_budget(open_files: int) -> int:
    """Client connections one worker may hold with ``open_files`` descriptors: the rest (a quarter, at
    least 256) stays free for backend connections, the bus, child pipes and log files, so an attacker who
    fills the cap cannot make the worker's own connections fail."""
    return max(1, open_files - max(_MIN_RESERVE, open_files // 4))
