"""Where the bus sockets live: ``ipc://`` paths inside a runtime directory only this user can enter."""

from __future__ import annotations

import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Endpoints", "create_runtime_dir"]

# sockaddr_un.sun_path is 108 bytes on Linux, including the terminating NUL.
_MAX_IPC_PATH = 107
_LONGEST_NAME = len("s-0123456789-63.sock")  # stdio host sockets live in the same directory


@dataclass(frozen=True, slots=True)
class Endpoints:
    state: str  # PUB -> SUB: deltas and heartbeats
    snapshot: str  # ROUTER <- DEALER: snapshots and status requests
    observe: str  # PUSH -> PULL: worker reports
    relay: str  # PUB -> SUB: cross-worker messages, topic-prefixed

    @classmethod
    def in_dir(cls, directory: Path) -> Endpoints:
        paths = {name: directory / f"{name}.sock" for name in ("state", "snapshot", "observe", "relay")}
        if len(os.fsencode(directory)) + 1 + _LONGEST_NAME > _MAX_IPC_PATH:
            raise ValueError(
                f"runtime directory {directory} is too long for Unix socket paths (at most "
                f"{_MAX_IPC_PATH - 1 - _LONGEST_NAME} bytes); set server.runtime_dir to a shorter directory"
            )
        return cls(**{name: f"ipc://{path}" for name, path in paths.items()})


def create_runtime_dir(base: Path | None) -> Path:
    """A fresh private (0700) directory under ``base``, $XDG_RUNTIME_DIR or the temp directory."""
    parent = base or Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="only1mcp-", dir=parent))
    os.chmod(path, 0o700)
    info = path.stat()
    if stat.S_IMODE(info.st_mode) != 0o700 or info.st_uid != os.geteuid():
        raise PermissionError(f"runtime directory {path} is not private (mode 0700, owned by this user)")
    return path
