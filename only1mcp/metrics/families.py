"""Metric families (counter, gauge, histogram) whose children are looked up once per label values and
kept: recording is then one dictionary lookup at most, and a ``Cell`` write."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from prometheus_client.mmap_dict import mmap_key
from prometheus_client.utils import floatToGoString

from .store import Cell, MetricFile

__all__ = ["DURATION_BUCKETS", "Counter", "Gauge", "Histogram", "HistogramChild"]

# seconds: from a list answered from the catalog (well under a millisecond) to a tool call of a minute
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _Family:
    __slots__ = ("_children", "_file", "documentation", "labelnames", "name")

    def __init__(self, file: MetricFile, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self._file = file
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], object] = {}


class Counter(_Family):
    """A monotonic total; the sample is ``<name>`` (which ends in ``_total``)."""

    __slots__ = ()

    def labels(self, *values: str) -> Cell:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._file.cell(self.name.removesuffix("_total"), self.name,
                                                             self.labelnames, values, self.documentation)
        return child  # type: ignore[return-value]


class Gauge(_Family):
    """A value this process sets; across processes the collector sums the live ones (``livesum``: the
    files of a dead process are removed, so its last values do not linger)."""

    __slots__ = ()

    def labels(self, *values: str) -> Cell:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._file.cell(self.name, self.name, self.labelnames, values,
                                                             self.documentation)
        return child  # type: ignore[return-value]

    def forget(self, *values: str) -> None:
        """Remove this process's sample of these label values (a removed backend's), so a scrape no longer
        shows it. The caller holds the directory's lock exclusively (``Metrics.forget`` does)."""
        self._file.remove({mmap_key(self.name, self.name, list(self.labelnames), list(values), self.documentation)})
        self._children.pop(values, None)


class HistogramChild:
    """One label set's buckets (each counts only its own range; the collector accumulates them) and sum,
    kept here and written through without a call per cell: an observation is on every request's path."""

    __slots__ = ("bounds", "counts", "indexes", "sum", "sum_index", "values")

    def __init__(self, bounds: tuple[float, ...], buckets: list[Cell], total: Cell, values: memoryview) -> None:
        self.bounds = bounds
        self.counts = [cell.value for cell in buckets]  # +Inf last
        self.indexes = tuple(cell.index for cell in buckets)
        self.sum = total.value
        self.sum_index = total.index
        self.values = values  # the file's newest mapping, which covers every cell made before it

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bucket (le means "less or equal")
        bucket = bisect_left(self.bounds, value)
        counts = self.counts
        counts[bucket] = count = counts[bucket] + 1.0
        values = self.values
        values[self.indexes[bucket]] = count
        self.sum = total = self.sum + value
        values[self.sum_index] = total


class Histogram(_Family):
    __slots__ = ("_bounds",)

    def __init__(self, file: MetricFile, name: str, documentation: str, labelnames: Sequence[str],
                 buckets: Sequence[float] = DURATION_BUCKETS) -> None:
        super().__init__(file, name, documentation, labelnames)
        self._bounds = tuple(sorted(buckets))

    def labels(self, *values: str) -> HistogramChild:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._child(values)
        return child  # type: ignore[return-value]

    def _child(self, values: tuple[str, ...]) -> HistogramChild:
        names = (*self.labelnames, "le")
        cell = self._file.cell
        # every bucket written at zero now, so the output has all of them from the first observation
        buckets = [cell(self.name, f"{self.name}_bucket", names, (*values, floatToGoString(bound)), self.documentation)
                   for bound in (*self._bounds, float("inf"))]
        total = cell(self.name, f"{self.name}_sum", self.labelnames, values, self.documentation)
        return HistogramChild(self._bounds, buckets, total, self._file.values)
