"""Worker process entry point (named by the supervisor as ``only1mcp.workers.main:serve``)."""

from __future__ import annotations

import logging
import signal

import uvloop

from only1mcp.logs import setup_logging
from only1mcp.process import die_with_parent
from only1mcp.spec import EXIT_OK, WorkerSpec

from .worker import Worker

__all__ = ["serve"]


def serve(spec: WorkerSpec) -> int:
    setup_logging(f"worker-{spec.slot}", spec.log_level, spec.log_format)
    # Ctrl-C reaches the whole process group; the supervisor decides how we stop (it sends SIGTERM).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not die_with_parent(spec.supervisor_pid):
        logging.getLogger("only1mcp.worker").warning("supervisor gone before worker start; exiting")
        return EXIT_OK
    return uvloop.run(Worker(spec).run())
