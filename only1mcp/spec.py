"""What the supervisor hands a worker at spawn, and the exit codes they agree on."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .bus.endpoints import Endpoints
from .exits import EXIT_BOOT, EXIT_CONFIG, EXIT_OK

__all__ = [
    "EXIT_BOOT",
    "EXIT_CONFIG",
    "EXIT_OK",
    "STDIO_HOST_ENTRY",
    "WORKER_ENTRY",
    "HostSpec",
    "WorkerSpec",
    "stdio_socket",
]


# The worker process entry point, named rather than imported: the supervisor never imports the workers.
WORKER_ENTRY = "only1mcp.workers.main:serve"
STDIO_HOST_ENTRY = "only1mcp.supervisor.stdio_host:serve"


def stdio_socket(runtime_dir: Path, backend: str, replica: int) -> Path:
    """Where the stdio host serves one replica of a stdio backend (hashed: names can be long)."""
    digest = hashlib.sha256(backend.encode()).hexdigest()[:10]
    return runtime_dir / f"s-{digest}-{replica}.sock"


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
    runtime_dir: str
    standby: bool = False  # boot, follow state, bind nothing until the supervisor assigns a slot
    log_format: str = "text"  # logging.format: its first lines already in the configured form


@dataclass(frozen=True, slots=True)
class HostSpec:
    """What the supervisor hands the stdio host process."""

    endpoints: Endpoints
    runtime_dir: str
    log_level: str
    supervisor_pid: int
    heartbeat_interval: float
    log_format: str = "text"
