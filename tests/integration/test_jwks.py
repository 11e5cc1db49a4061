"""The JWT issuer's keys as shared state, with the real supervisor, two real workers and a real OpenID
Connect provider process: discovery, one refetch for every worker on an unknown kid, removal on refresh,
the last good keys kept while the provider is down, and a reload of auth.jwt.

Each worker's keys are read from the admin status it serves (``served_by.jwks``). The unknown-kid reports
are sent on the supervisor's real report socket with the bus's own Reporter, as a worker sends them.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zmq.asyncio

from only1mcp.bus import Endpoints, Kind, Reporter, Role, Sender
from only1mcp.bus.messages import KeysWanted
from tests.support.gateway import Gateway
from tests.support.oidc import OidcProvider
from tests.support.waiting import eventually, holds

pytestmark = pytest.mark.timeout(120)


def config(issuer: str, **jwt: Any) -> str:
    options = ", ".join(f"{name}: {value}" for name, value in {"issuer": issuer, **jwt}.items())
    return f"server: {{port: 0, workers: 2}}\nauth: {{jwt: {{{options}}}}}\n"


async def start(launch_gateway: Callable[..., Any], tmp_path: Path, text: str) -> Gateway:
    path = tmp_path / "only1mcp.yaml"
    path.write_text(text)
    gateway: Gateway = await launch_gateway("--config", str(path))
    return gateway


async def on_every_worker(gateway: Gateway, wanted: Callable[[dict[str, Any]], bool], what: str,
                          timeout: float = 20) -> dict[int, dict[str, Any]]:
    """Until each worker's own key view (served_by.jwks) satisfies ``wanted``; new connections reach both."""
    pids = set(await gateway.fetch_worker_pids())
    seen: dict[int, dict[str, Any]] = {}

    async def everywhere() -> bool:
        served = (await gateway.fetch_status())["served_by"]
        seen[served["pid"]] = served["jwks"]
        return pids <= set(seen) and all(wanted(seen[pid]) for pid in pids)

    await eventually(everywhere, timeout, f"{what} on every worker")
    return seen


async def supervisor_keys(gateway: Gateway) -> dict[str, Any]:
    return dict((await gateway.fetch_status())["jwks"])


def kids(*expected: str) -> Callable[[dict[str, Any]], bool]:
    return lambda view: view["kids"] == sorted(expected)


async def test_keys_reach_every_worker_through_oidc_discovery(launch_gateway, tmp_path: Path,
                                                              oidc_provider: OidcProvider) -> None:
    gateway = await start(launch_gateway, tmp_path, config(oidc_provider.issuer))
    published = (await oidc_provider.stats())["kids"]
    views = await on_every_worker(gateway, kids(*published), "the provider's keys")
    assert len(views) == 2 and all(view["fetched_at"] for view in views.values())
    status = await supervisor_keys(gateway)
    assert (status["state"], status["source"], status["kids"]) == ("ok", oidc_provider.jwks_uri, sorted(published))
    stats = await oidc_provider.stats()
    assert (stats["discovery"], stats["oauth_metadata"], stats["jwks"]) == (1, 0, 1)


async def test_an_issuer_with_a_path_is_found_through_rfc8414(launch_gateway, tmp_path: Path) -> None:
    provider = await OidcProvider.launch("--issuer-path", "/realms/main", "--discovery", "oauth")
    try:
        gateway = await start(launch_gateway, tmp_path, config(provider.issuer))
        await on_every_worker(gateway, kids(*(await provider.stats())["kids"]), "the provider's keys")
        stats = await provider.stats()
        assert (stats["discovery"], stats["oauth_metadata"], stats["jwks"]) == (0, 1, 1)
    finally:
        await provider.aclose()


def runtime_dir(gateway: Gateway) -> Path:
    found = re.search(r"runtime dir (\S+)\)", gateway.log)
    assert found, gateway.log
    return Path(found.group(1))


async def test_an_unknown_kid_is_fetched_once_for_every_worker(launch_gateway, tmp_path: Path,
                                                               oidc_provider: OidcProvider) -> None:
    gateway = await start(launch_gateway, tmp_path, config(oidc_provider.issuer, jwks_uri=oidc_provider.jwks_uri,
                                                           min_refresh_interval=5))
    before = (await oidc_provider.stats())["kids"]
    await on_every_worker(gateway, kids(*before), "the provider's keys")
    rotated_in = await oidc_provider.add_key("RS256")
    refetch_after = (await supervisor_keys(gateway))["refetch_after"]  # min_refresh_interval after the first fetch
    await eventually(lambda: time.time() >= refetch_after, 10, "the first fetch to be min_refresh_interval old")
    ctx = zmq.asyncio.Context()
    endpoints = Endpoints.in_dir(runtime_dir(gateway))
    reporters = [Reporter(ctx, endpoints, Sender(Role.WORKER, slot, pid))
                 for slot, pid in enumerate(await gateway.fetch_worker_pids())]
    try:
        for _ in range(5):  # both workers meet tokens signed with the new key, several each
            for reporter in reporters:
                reporter.send(Kind.KEYS_WANTED, KeysWanted(rotated_in))
        await on_every_worker(gateway, kids(*before, rotated_in), "the rotated-in key")
        assert (await oidc_provider.stats())["jwks"] == 2  # the first fetch, and one refetch for them all
        status = await supervisor_keys(gateway)
        assert status["refetches"] == 1
        deferred_before = status["refetches_deferred"]  # reports that came while the refetch ran, if any
        await eventually(lambda: time.time() >= status["refetch_after"], 15, "min_refresh_interval to pass")
        await oidc_provider.add_key("RS256")  # nothing asks for it: not fetched before the next reports
        for reporter in reporters:
            reporter.send(Kind.KEYS_WANTED, KeysWanted("forged-kid"))  # fetched at once: outside the interval

        async def fetched() -> bool:
            return (await oidc_provider.stats())["jwks"] == 3

        await eventually(fetched, 10, "one fetch for the first forged-kid reports")
        for reporter in reporters * 3:  # within min_refresh_interval: deferred to its end, one fetch for all
            reporter.send(Kind.KEYS_WANTED, KeysWanted("forged-kid"))

        async def deferred() -> bool:
            return (await supervisor_keys(gateway))["refetches_deferred"] > deferred_before

        await eventually(deferred, 10, "the reports of a forged kid to be deferred")
        assert (await oidc_provider.stats())["jwks"] == 3  # not fetched again before the interval has passed

        async def refetched_once() -> bool:
            return (await oidc_provider.stats())["jwks"] == 4

        await eventually(refetched_once, 15, "the deferred refetch once min_refresh_interval has passed")
        assert (await supervisor_keys(gateway))["refetches"] == 3
        assert (await oidc_provider.stats())["jwks"] == 4  # one deferred fetch for all six reports
    finally:
        for reporter in reporters:
            reporter.close()
        ctx.term()


async def test_a_removed_key_disappears_at_the_next_refresh(launch_gateway, tmp_path: Path,
                                                            oidc_provider: OidcProvider) -> None:
    gateway = await start(launch_gateway, tmp_path, config(oidc_provider.issuer, refresh_interval=1,
                                                           min_refresh_interval=1))
    rsa, ec = (await oidc_provider.stats())["kids"]
    await on_every_worker(gateway, kids(rsa, ec), "the provider's keys")
    await oidc_provider.remove_key(rsa)
    await on_every_worker(gateway, kids(ec), "the removal of the RSA key")
    assert (await supervisor_keys(gateway))["kids"] == [ec]


async def test_a_provider_that_is_down_leaves_the_last_good_keys_in_force(launch_gateway, tmp_path: Path,
                                                                         oidc_provider: OidcProvider) -> None:
    gateway = await start(launch_gateway, tmp_path, config(oidc_provider.issuer, refresh_interval=1,
                                                           min_refresh_interval=1))
    published = (await oidc_provider.stats())["kids"]
    await on_every_worker(gateway, kids(*published), "the provider's keys")
    await oidc_provider.set_down(True)

    async def failing() -> dict[str, Any] | None:
        status = await supervisor_keys(gateway)
        return status if status["state"] == "failing" else None

    status = await eventually(failing, 20, "the supervisor to see the provider down")
    assert status["last_error"].endswith("answered HTTP 503") and status["kids"] == sorted(published)
    attempts = status["fetches"]

    async def retried() -> bool:
        return (await supervisor_keys(gateway))["fetches"] >= attempts + 2

    await eventually(retried, 20, "two more attempts while the provider is down")
    await on_every_worker(gateway, kids(*published), "the last good keys")
    assert len(re.findall(r"cannot fetch the JWT issuer's keys", gateway.log)) == 1  # once, not per retry
    await oidc_provider.set_down(False)

    async def recovered() -> bool:
        current = await supervisor_keys(gateway)
        return current["state"] == "ok" and current["fetched_at"] > status["last_error_at"]

    await eventually(recovered, 20, "the supervisor to fetch the keys again")


async def test_a_reload_that_changes_auth_jwt_refetches_and_removing_it_drops_the_keys(
        launch_gateway, tmp_path: Path, oidc_provider: OidcProvider) -> None:
    gateway = await start(launch_gateway, tmp_path, config(oidc_provider.issuer))
    published = (await oidc_provider.stats())["kids"]
    await on_every_worker(gateway, kids(*published), "the provider's keys")
    assert (await oidc_provider.stats())["jwks"] == 1
    (tmp_path / "only1mcp.yaml").write_text(config(oidc_provider.issuer, leeway=5))
    gateway.signal(signal.SIGHUP)

    async def refetched() -> bool:
        return (await oidc_provider.stats())["jwks"] == 2

    await eventually(refetched, 20, "a fetch for the reloaded auth.jwt")
    await holds(refetched, 1.0, "one fetch per reload")
    (tmp_path / "only1mcp.yaml").write_text("server: {port: 0, workers: 2}\n")
    gateway.signal(signal.SIGHUP)
    await on_every_worker(gateway, kids(), "no keys once auth.jwt is removed")
    assert await supervisor_keys(gateway) == {"configured": False}
