"""``GET /metrics`` and ``GET /api/v1/admin/metrics``: every process's metrics, aggregated, from any worker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from only1mcp.bus import Reporter
from only1mcp.metrics import CONTENT_TYPE, render

from .context import WorkerContext
from .gateway import Gateway

__all__ = ["WorkerGauges", "metrics_route"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WorkerGauges:
    """What a worker samples instead of recording per request (in flight, open streams, dropped reports):
    at every heartbeat, and before it answers a scrape so its own figures are current."""

    __slots__ = ("_context", "_dropped", "_gateway", "_in_flight", "_reporter", "_streams")

    def __init__(self, context: WorkerContext, gateway: Gateway, reporter: Reporter) -> None:
        metrics = gateway.metrics
        self._context = context
        self._gateway = gateway
        self._reporter = reporter
        self._in_flight = metrics.in_flight.labels()
        self._streams = metrics.open_streams.labels()
        self._dropped = metrics.bus_dropped.labels()

    def sample(self) -> None:
        if not self._gateway.request_metrics.on:
            return
        streams = self._gateway.streams
        self._in_flight.set(self._context.in_flight)
        self._streams.set(len(streams) + streams.duplex)
        # the reporter's own count is this process's total: the cell takes it as it is
        self._dropped.set(self._reporter.dropped)


def metrics_route(gateway: Gateway, gauges: WorkerGauges) -> Handler:
    """The Prometheus text format of every process's metrics (404 while ``metrics.enabled`` is off)."""

    async def handle(_request: web.Request) -> web.Response:
        if not gateway.request_metrics.on:
            return web.json_response({"error": "metrics are off; set metrics.enabled: true to record and serve "
                                               "them"}, status=404)
        gauges.sample()
        return web.Response(body=render(gateway.metrics.directory), headers={"Content-Type": CONTENT_TYPE})

    return handle
