"""The aggregate of every process's metrics, read from the metrics directory: the Prometheus text format for
scrapes, and plain samples for anything else that wants numbers (the admin API, ``only1mcp top``)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import NamedTuple

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from .store import MetricFile, directory_lock

__all__ = ["CONTENT_TYPE", "MetricSample", "metrics_dir", "prepare_dir", "process_gone", "read_samples", "render"]

CONTENT_TYPE = CONTENT_TYPE_LATEST  # text/plain; version=0.0.4

# The totals of processes that have exited: <kind>_archive.db, read by the collector like any process's file
_ARCHIVE = "archive"
_KEPT = ("counter", "histogram")  # what a dead process leaves that must go on counting


class MetricSample(NamedTuple):
    """One aggregated sample: its name (``only1mcp_requests_total``, ``…_bucket``, ``…_sum``, ``…_count``),
    its labels and its value summed over every process (live ones only, for gauges)."""

    name: str
    labels: dict[str, str]
    value: float


def metrics_dir(runtime_dir: Path | str) -> Path:
    """Where every process of one gateway keeps its metric files: inside the private runtime directory."""
    return Path(runtime_dir) / "metrics"


def prepare_dir(runtime_dir: Path) -> Path:
    """Create the metrics directory (0700) empty: files left by an earlier run would add their totals."""
    directory = metrics_dir(runtime_dir)
    directory.mkdir(mode=0o700, exist_ok=True)
    for leftover in directory.glob("*.db"):
        leftover.unlink()
    return directory


def process_gone(directory: Path, pid: int) -> bool:
    """A process exited: its gauges (in flight, open streams) stop counting, and its counters and histograms
    are added to the archive files and its own removed, so totals over all processes never go down and the
    directory does not grow with every worker that ever ran. False when a reading held the directory: call
    again later (nothing was changed). The caller knows the process is gone (it reaped it), and pids are not
    reused that soon."""
    with directory_lock(directory, fcntl.LOCK_EX | fcntl.LOCK_NB) as locked:
        if not locked:
            return False
        with contextlib.suppress(FileNotFoundError):  # it may have created none
            mark_process_dead(pid, str(directory))
        for kind in _KEPT:
            path = directory / f"{kind}_{pid}.db"
            if not path.exists():
                continue
            dead = MetricFile(directory, kind, pid)
            archive = MetricFile(directory, kind, _ARCHIVE)
            try:
                for key, value in dead.entries():
                    archive.add(key, value)
            finally:
                dead.close()
                archive.close()
            path.unlink()
    return True


def _registry(directory: Path) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry, path=os.fspath(directory))
    return registry


def render(directory: Path) -> bytes:
    """Every process's metrics, aggregated, in the Prometheus text format."""
    with directory_lock(directory, fcntl.LOCK_SH):
        return generate_latest(_registry(directory))


def read_samples(directory: Path) -> list[MetricSample]:
    """The same aggregate as ``render``, as plain data."""
    with directory_lock(directory, fcntl.LOCK_SH):
        return [MetricSample(sample.name, dict(sample.labels), sample.value)
                for family in _registry(directory).collect() for sample in family.samples]
