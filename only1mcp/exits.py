"""Process exit codes: a contract between the supervisor and the processes it starts (and its callers)."""

from __future__ import annotations

__all__ = ["EXIT_BOOT", "EXIT_CONFIG", "EXIT_OK"]

EXIT_OK = 0
EXIT_CONFIG = 1  # the config is invalid, or the address cannot be served; nothing was started
EXIT_BOOT = 3  # a worker (or the stdio host) could not boot, for any reason: halt, do not restart forever
