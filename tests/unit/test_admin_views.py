"""The admin API's pure parts: traffic from metric samples, quantiles, masked settings, the backend view,
the terminal rendering, and what drain and reset do to routing and breakers."""

from __future__ import annotations

import json
import math
from types import MappingProxyType

import pytest
from only1mcp.workers.routing import Router
from rich.console import Console

from only1mcp.admin.masking import masked_settings
from only1mcp.admin.traffic import quantile, traffic_by_backend, window_quantile
from only1mcp.admin.views import backends_view, catalog_view
from only1mcp.backends.base import BackendUnavailable
from only1mcp.bus.state import BackendControl, BackendRoutes, CatalogState, ConfigState, ReplicaRoute, State
from only1mcp.config.models import Settings
from only1mcp.console.client import Reading, rates
from only1mcp.console.view import render
from only1mcp.metrics import MetricSample
from only1mcp.routing.breaker import Breaker, BreakerPolicy
from only1mcp.routing.breaker import State as BreakerState
from only1mcp.routing.health import Health

INF = math.inf


def _samples(backend: str, ok: int, errors: int, buckets: dict[float, float]) -> list[MetricSample]:
    samples = [MetricSample("only1mcp_requests_total", {"method": "tools/call", "backend": backend, "outcome": "ok"},
                            ok),
               MetricSample("only1mcp_requests_total",
                            {"method": "tools/call", "backend": backend, "outcome": "error"}, errors)]
    for bound, count in buckets.items():
        le = "+Inf" if bound == INF else str(bound)
        samples.append(MetricSample("only1mcp_request_duration_seconds_bucket",
                                    {"method": "tools/call", "backend": backend, "le": le}, count))
    return samples


def test_quantiles_interpolate_within_their_bucket() -> None:
    buckets = [(0.01, 50.0), (0.1, 90.0), (1.0, 100.0), (INF, 100.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.01)
    assert quantile(0.7, buckets) == pytest.approx(0.01 + 0.09 * 20 / 40)
    assert quantile(0.99, buckets) == pytest.approx(0.1 + 0.9 * 9 / 10)
    assert quantile(0.5, [(0.01, 0.0), (INF, 0.0)]) is None  # nothing observed: no quantile
    assert quantile(0.99, [(0.01, 1.0), (INF, 10.0)]) == 0.01  # beyond the last bound: all that is known


def test_traffic_sums_methods_and_counts_errors_per_backend() -> None:
    samples = _samples("web", 90, 10, {0.01: 50, 0.1: 90, 1.0: 100, INF: 100})
    samples += [MetricSample("only1mcp_requests_total", {"method": "ping", "backend": "", "outcome": "ok"}, 7)]
    traffic = traffic_by_backend(samples)
    assert traffic["web"]["requests"] == 100 and traffic["web"]["errors"] == 10
    assert traffic["web"]["p50_ms"] == pytest.approx(10.0)
    assert traffic["web"]["buckets"][-1] == ["+Inf", 100]
    assert traffic[""]["requests"] == 7  # answered by the gateway itself


def test_a_window_quantile_sees_only_the_calls_between_two_readings() -> None:
    before = [[0.01, 100], [1.0, 100], ["+Inf", 100]]  # 100 fast calls
    after = [[0.01, 100], [1.0, 110], ["+Inf", 110]]  # then 10 slow ones
    assert window_quantile(0.5, before, after) > 0.01
    assert window_quantile(0.5, [], after) == pytest.approx(0.01 * 55 / 100)


def _settings() -> Settings:
    return Settings.model_validate({"sessions": {"secret": "s" * 40}, "backends": [
        {"name": "local", "transport": "stdio", "command": "srv", "env": {"API_TOKEN": "tok-123456"}},
        {"name": "web", "transport": "http", "url": "http://user:pw@127.0.0.1:9/mcp?key=abcdef",
         "headers": {"Authorization": "Bearer xyz-123456"}}]})


def test_masked_settings_hide_every_secret_and_keep_the_rest() -> None:
    shown = masked_settings(_settings())
    text = json.dumps(shown)
    for secret in ("s" * 40, "tok-123456", "xyz-123456", "user:pw", "abcdef"):
        assert secret not in text
    local, web = shown["backends"]
    assert local["env"] == {"API_TOKEN": "***"} and local["command"] == "srv"
    assert web["headers"] == {"Authorization": "***"}
    assert web["url"] == "http://***@127.0.0.1:9/mcp?key=***"
    assert shown["sessions"]["secret"] == "***"


def _state(drained: bool) -> State:
    settings = _settings()
    catalog = {"routes": {"tools": {"web_a": ["web", "a"], "web_b": ["web", "b"], "local_c": ["local", "c"]},
                          "prompts": {}, "resources": {}, "templates": []},
               "backends": {"web": {"state": "ok"}, "local": {"state": "failed", "error": "exited"}},
               "collisions": [{"tool": "c", "kept_by": "local"}]}
    open_route = ReplicaRoute(Health.HEALTHY, BreakerState.OPEN, 5.0, "3 consecutive failures", 1)
    return State(seq=9, config=ConfigState(1, "d", "f.yaml", 1.0, settings.model_dump(mode="json")),
                 catalog=CatalogState(3, catalog),
                 routes=MappingProxyType({"web": BackendRoutes((open_route,))}),
                 operator=MappingProxyType({"web": BackendControl(drained, 2)}))


def test_the_backend_view_joins_the_supervisor_the_worker_and_the_metrics() -> None:
    status = {"routes": {"web": [{"health": "healthy", "breaker": "closed", "reason": "", "retry_at": None,
                                  "last_error": "timed out", "calls": 4}],
                         "local": [{"health": "unhealthy", "breaker": "closed", "reason": "exited", "retry_at": None,
                                    "last_error": "exited", "calls": 0}]},
              "stdio": [{"backend": "local", "replica": 0, "pid": 77, "state": "restarting", "restarts": 3,
                         "last_error": "exited"}], "workers": []}
    traffic = {"web": {"requests": 4, "errors": 1, "p50_ms": 2.0, "p99_ms": 9.0, "buckets": []}}
    local, web = backends_view(status, _state(drained=True), traffic)  # in config order
    assert web["tools"] == 2 and web["drained"] and web["restarts_ordered"] == 2
    assert web["replicas"][0]["breaker"] == "open"  # as this worker routes by it, not the supervisor's copy
    assert web["replicas"][0]["last_error"] == "timed out" and web["traffic"]["errors"] == 1
    assert local["state"] == "failed" and local["children"][0]["pid"] == 77 and local["children"][0]["restarts"] == 3
    assert local["traffic"]["requests"] == 0 and local["replicas"][0]["health"] == "unhealthy"
    catalog = catalog_view(_state(drained=False))
    assert {b["name"]: b["tools"] for b in catalog["backends"]} == {"web": ["web_a", "web_b"], "local": ["local_c"]}
    assert catalog["collisions"] and catalog["version"] == 3


def test_a_drained_router_refuses_naming_the_way_back() -> None:
    backend = _settings().backends[1]
    router = Router(backend)
    assert router.choose(None) == 0
    router.drained = True
    with pytest.raises(BackendUnavailable, match=r"drained by an operator.*/api/v1/admin/backends/web/undrain"):
        router.choose(None)


def test_a_reset_closes_an_open_breaker_and_forgets_its_window() -> None:
    breaker = Breaker(BreakerPolicy(failures=2, cooldown=300))
    breaker.record(False, 1.0, "down")
    assert breaker.record(False, 1.1, "down") is not None and breaker.state is BreakerState.OPEN
    transition = breaker.reset(2.0, "reset by an operator")
    assert transition is not None and transition.state is BreakerState.CLOSED and breaker.retry_at is None
    assert breaker.record(False, 2.1, "down") is None  # one failure after the reset: the count started over
    assert breaker.reset(3.0, "again") is None  # closed already: no transition to report


def _reading(at: float, requests: int, buckets: list[list[object]]) -> Reading:
    backend = {"name": "web", "state": "ok", "drained": False, "tools": 2,
               "replicas": [{"breaker": "closed", "health": "healthy"}],
               "traffic": {"requests": requests, "errors": 0, "p50_ms": 1.0, "p99_ms": 2.0, "buckets": buckets}}
    workers = {"workers": [{"slot": 0, "pid": 10, "ready": True, "rss_bytes": 50 * 1048576, "in_flight": 0,
                            "requests": requests, "restarts": 1}], "stdio_host": None}
    reloads = {"version": 2, "ok": 1, "failed": 0, "needs_restart": [],
               "history": [{"at": 1.0, "trigger": "admin API", "ok": True, "version": 2}]}
    return Reading(at, {"backends": [backend]}, workers, reloads)


def test_top_renders_rates_between_two_readings() -> None:
    first = _reading(10.0, 100, [[0.01, 100], ["+Inf", 100]])
    second = _reading(12.0, 140, [[0.01, 140], ["+Inf", 140]])
    between = rates(first, second)
    assert between["web"]["rps"] == pytest.approx(20.0)
    console = Console(record=True, width=120)
    console.print(render(second, between, "http://127.0.0.1:1"))
    screen = console.export_text()
    line = next(line for line in screen.splitlines() if line.split()[:1] == ["web"])
    assert line.split()[1:4] == ["ok", "closed", "20.0"], screen
    assert "Reloads: 1 ok, 0 failed; last" in screen and "by admin API" in screen
    assert rates(None, second)["web"]["rps"] is None  # one reading: no rate yet
