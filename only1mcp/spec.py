"""What the supervisor hands a worker at spawn, and the exit codes they agree on."""

from __future__ import annotations

from dataclasses import dataclass

from .bus.endpoints import Endpoints

__all__ = ["EXIT_CONFIG", "EXIT_OK", "EXIT_WORKER_BOOT", "WORKER_ENTRY", "WorkerSpec"]

EXIT_OK = 0
EXIT_CONFIG = 1  # the config is invalid; nothing was started
EXIT_WORKER_BOOT = 3  # a worker could not boot (e.g. its port is taken): halt, do not restart forever

# The worker process entry point, named rather than imported: the supervisor never imports the workers.
WORKER_ENTRY = "only1mcp.workers.main:serve"


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    slot: int
    host: str
    port: int
    endpoints: Endpoints
    heartbeat_interval: float
    drain_timeout: float
    log_level: str
    supervisor_pid: int
