"""The admin API against a real gateway (2 workers) and real backends: every answer matches the OpenAPI
document it serves, secrets stay masked, and the actions reach every worker (drain, breaker reset,
restart of a stdio backend)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from jsonschema import Draft202012Validator

from only1mcp.policy.patterns import ADMIN_ACTIONS
from tests.support.gateway import Gateway
from tests.support.processes import ROOT, FixtureServer, stdio_command
from tests.support.rawmcp import RawMcp, pinned
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(180)

COUNTER = "feature://counter"
SECRET_HEADER = "Bearer do-not-show-this-7f3a"
SESSION_SECRET = "session-secret-never-shown-0123456789abcdef"


async def _gateway(launch_gateway: Any, tmp_path: Path, web: FixtureServer, web_extra: str = "") -> Gateway:
    """2 workers in front of ``web`` (HTTP, with a secret header) and ``local`` (a shared stdio child)."""
    command, *args = stdio_command("feature_server", "--name", "local")
    local = json.dumps({"name": "local", "transport": "stdio", "command": command, "args": args, "cwd": str(ROOT)})
    config = tmp_path / "only1mcp.yaml"
    config.write_text(
        f"server: {{port: 0, workers: 2}}\nsessions: {{secret: {SESSION_SECRET}}}\n"
        f"backends:\n  - name: web\n    url: {web.url}\n    headers: {{Authorization: '{SECRET_HEADER}'}}\n"
        f"{web_extra}  - {local}\n")
    return await launch_gateway("--config", str(config))


async def _request(gateway: Gateway, method: str, path: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.request(method, gateway.url + path,
                                                           headers={"Connection": "close"}) as response:
        return response.status, json.loads(await response.read() or b"{}")


def _check(document: dict[str, Any], method: str, path: str, status: int, body: dict[str, Any]) -> None:
    """``body`` is what the document promises for ``method path`` answering ``status``."""
    operation = document["paths"][path][method.lower()]
    assert str(status) in operation["responses"], f"{method} {path} answered {status}, not in the document: {body}"
    schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
    validator = Draft202012Validator({**schema, "components": document["components"]})
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]
    assert not errors, f"{method} {path} ({status}) does not match the OpenAPI document: {errors}"


async def test_every_answer_matches_the_openapi_document(launch_gateway, tmp_path: Path) -> None:
    web = await FixtureServer.launch("feature_server", "--name", "web")
    try:
        gateway = await _gateway(launch_gateway, tmp_path, web)
        async with aiohttp.ClientSession() as http:
            mcp = RawMcp(http, gateway.url)
            await mcp.initialize()
            for _ in range(5):
                assert "result" in await mcp.call("tools/call", {"name": "web_whoami", "arguments": {}})
        status, document = await _request(gateway, "GET", "/api/v1/admin/openapi.json")
        assert status == 200 and document["openapi"].startswith("3.1")
        Draft202012Validator.check_schema({"$defs": document["components"]["schemas"]})

        operations = {op["operationId"] for path in document["paths"].values() for op in path.values()}
        assert set(ADMIN_ACTIONS) <= operations, "every admin route is in the document"
        reads = {path: path.rsplit("/", 1)[1] for path in document["paths"] if "{" not in path
                 and "get" in document["paths"][path] and path.rsplit("/", 1)[1] not in ("openapi.json", "metrics")}
        reads["/api/v1/admin/wait?config_version=1&timeout=0"] = reads.pop("/api/v1/admin/wait")
        assert set(reads.values()) == {"backends", "workers", "catalog", "config", "reloads", "status", "wait"}
        answers = {}
        for path, name in reads.items():
            status, body = await _request(gateway, "GET", path)
            _check(document, "GET", path.split("?")[0], status, body)
            answers[name] = body

        backends = {b["name"]: b for b in answers["backends"]["backends"]}
        assert set(backends) == {"web", "local"}
        assert backends["web"]["traffic"]["requests"] >= 5  # the metrics of both workers, summed
        assert backends["web"]["traffic"]["p50_ms"] is not None
        assert (backends["local"]["children"][0]["pid"] or 0) > 0 and backends["local"]["tools"] > 0, backends["local"]
        assert {w["pid"] for w in answers["workers"]["workers"]} == set(await gateway.fetch_worker_pids())
        assert all(w["rss_bytes"] > 0 for w in answers["workers"]["workers"])
        catalog = {b["name"]: b for b in answers["catalog"]["backends"]}
        assert "web_whoami" in catalog["web"]["tools"] and "local_whoami" in catalog["local"]["tools"]
        shown = json.dumps(answers["config"])
        assert SESSION_SECRET not in shown and "do-not-show-this" not in shown
        web_settings = next(b for b in answers["config"]["settings"]["backends"] if b["name"] == "web")
        assert web_settings["headers"] == {"Authorization": "***"}

        for method, path, expected in (
            ("POST", "/api/v1/admin/reload", 200),
            ("POST", "/api/v1/admin/backends/web/drain", 200),
            ("POST", "/api/v1/admin/backends/web/undrain", 200),
            ("POST", "/api/v1/admin/backends/web/reset", 200),
            ("POST", "/api/v1/admin/backends/nowhere/drain", 404),
            ("POST", "/api/v1/admin/backends/web/restart", 409),
            ("POST", "/api/v1/admin/backends/web/reset?replica=7", 404),
            ("POST", "/api/v1/admin/backends/web/reset?replica=x", 400),
        ):
            status, body = await _request(gateway, method, path)
            assert status == expected, (path, body)
            _check(document, method, path.split("?")[0].replace("/web/", "/{name}/").replace("/nowhere/", "/{name}/"),
                   status, body)
        status, body = await _request(gateway, "GET", "/api/v1/admin/reloads")
        assert body["history"][-1]["trigger"] == "admin API" and body["history"][-1]["ok"]
    finally:
        await web.aclose()


async def test_a_stdio_restart_replaces_its_children(launch_gateway, tmp_path: Path) -> None:
    """A shared backend's child in the stdio host, and a per_worker backend's child in each worker."""
    command, *args = stdio_command("feature_server", "--name", "local")
    backends = [{"name": name, "transport": "stdio", "command": command, "args": args, "cwd": str(ROOT),
                 "per_worker": name == "solo"} for name in ("local", "solo")]
    config = tmp_path / "only1mcp.yaml"
    config.write_text("server: {port: 0, workers: 2}\nbackends:\n" + "".join(f"  - {json.dumps(b)}\n"
                                                                             for b in backends))
    gateway = await launch_gateway("--config", str(config))

    async def running(name: str) -> set[int] | None:
        _, body = await _request(gateway, "GET", "/api/v1/admin/backends")
        backend = next(b for b in body["backends"] if b["name"] == name)
        pids = {c["pid"] for c in backend["children"] if c["state"] == "running" and c["pid"]}
        return pids if len(pids) == (2 if name == "solo" else 1) else None  # solo: one child per worker

    before = {name: await eventually(lambda n=name: running(n), 20, f"the children of '{name}' to run")
              for name in ("local", "solo")}
    for name in ("local", "solo"):
        status, body = await _request(gateway, "POST", f"/api/v1/admin/backends/{name}/restart")
        assert status == 200 and body["restarts"] == 1, body

    async def replaced(name: str) -> bool:
        pids = await running(name)
        return pids is not None and not pids & before[name]

    for name in ("local", "solo"):  # heartbeats carry the workers' children: a second or two
        await eventually(lambda n=name: replaced(n), 30, f"new children of '{name}'")
    await gateway.log_line(r"backend 'local': restarting its children \(ordered through the admin API\)")
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()

        async def serves() -> bool:
            answers = [await mcp.call("tools/call", {"name": f"{name}_whoami", "arguments": {}})
                       for name in ("local", "solo")]
            return all("result" in answer for answer in answers)

        await eventually(serves, 20, "the restarted backends to serve calls")


async def _answers_on_each_worker(gateway: Gateway, session_id: str, method: str, params: dict[str, Any],
                                  count: int) -> dict[int, list[dict[str, Any]]]:
    """``count`` answers to one request on a keep-alive connection held by each of the two workers."""
    first, first_pid = await pinned(gateway.url)
    second, second_pid = await pinned(gateway.url, avoid=first_pid)
    answers: dict[int, list[dict[str, Any]]] = {}
    for pid, http in ((first_pid, first), (second_pid, second)):
        async with http:
            mcp = RawMcp(http, gateway.url, keep_alive=True)
            mcp.session_id = session_id
            answers[pid] = [await mcp.call(method, params, request_id=n) for n in range(count)]
    return answers


async def test_a_drained_backend_gets_no_new_calls_on_any_worker(launch_gateway, tmp_path: Path) -> None:
    web = await FixtureServer.launch("feature_server", "--name", "web")
    try:
        gateway = await _gateway(launch_gateway, tmp_path, web)
        async with aiohttp.ClientSession() as http:
            mcp = RawMcp(http, gateway.url)
            await mcp.initialize()
            touch = {"name": "web_touch", "arguments": {"uri": COUNTER}}
            assert "result" in await mcp.call("tools/call", touch)  # the backend's counter: 1

            status, body = await _request(gateway, "POST", "/api/v1/admin/backends/web/drain")
            assert status == 200 and body["drained"], body
            answers = await _answers_on_each_worker(gateway, mcp.session_id or "", "tools/call", touch, 10)
            assert len(answers) == 2
            for pid, replies in answers.items():
                for reply in replies:
                    assert reply.get("error", {}).get("code") == -32003, (pid, reply)
                    assert "backend 'web' is drained by an operator" in reply["error"]["message"], (pid, reply)
            # other backends are untouched
            assert "result" in await mcp.call("tools/call", {"name": "local_whoami", "arguments": {}})

            status, body = await _request(gateway, "POST", "/api/v1/admin/backends/web/undrain")
            assert status == 200 and not body["drained"], body
            read = await mcp.call("resources/read", {"uri": COUNTER})
            # none of the 20 refused calls reached the backend: its counter is still 1
            assert read["result"]["contents"][0]["text"] == "1", read
        await gateway.log_line(r"admin: backend 'web' drained: no new calls go to it")
    finally:
        await web.aclose()


async def test_a_breaker_reset_closes_it_on_every_worker(launch_gateway, tmp_path: Path) -> None:
    web = await FixtureServer.launch("feature_server", "--name", "web")
    try:
        # A cooldown far longer than the test: only the reset can close it.
        gateway = await _gateway(launch_gateway, tmp_path, web, "    breaker: {failures: 2, cooldown: 300}\n"
                                 "    health: {interval: 60}\n")
        async with aiohttp.ClientSession() as http:
            mcp = RawMcp(http, gateway.url)
            await mcp.initialize()
            whoami = {"name": "web_whoami", "arguments": {}}
            assert "result" in await mcp.call("tools/call", whoami)
            await web.aclose()

            async def open_everywhere() -> bool:
                answers = await _answers_on_each_worker(gateway, mcp.session_id or "", "tools/call", whoami, 3)
                return all("circuit open" in r.get("error", {}).get("message", "")
                           for replies in answers.values() for r in replies)

            await eventually(open_everywhere, 20, "the breaker to be open on both workers", interval=0.2)
            web = await web.relaunch()
            status, body = await _request(gateway, "POST", "/api/v1/admin/backends/web/reset")
            assert status == 200 and body["replicas"] == [0], body

            # Each worker, as it routes, holds the breaker closed, and calls go through on both.
            seen: set[int] = set()
            for _ in range(40):
                _, view = await _request(gateway, "GET", "/api/v1/admin/backends")
                web_view = next(b for b in view["backends"] if b["name"] == "web")
                assert web_view["replicas"][0]["breaker"] == "closed", view["served_by"]
                seen.add(view["served_by"]["pid"])
                if len(seen) == 2:
                    break
            assert len(seen) == 2, seen
            answers = await _answers_on_each_worker(gateway, mcp.session_id or "", "tools/call", whoami, 3)
            assert all("result" in r for replies in answers.values() for r in replies), answers
        await gateway.log_line(r"backend 'web' replica 0 breaker closed: reset by an operator \(admin API\)")
    finally:
        await web.aclose()


VIEWER, OPERATOR = "viewer-key-5b1d0c33", "operator-key-e47a9f12"


def _sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def test_each_admin_action_needs_its_permission(launch_gateway, tmp_path: Path) -> None:
    web = await FixtureServer.launch("feature_server", "--name", "web")
    try:
        config = tmp_path / "only1mcp.yaml"
        config.write_text(
            "server: {port: 0, workers: 2}\nauth:\n  mode: api_key\n  api_keys:\n"
            f"    - {{name: vera, sha256: {_sha(VIEWER)}, roles: [viewer]}}\n"
            f"    - {{name: otto, sha256: {_sha(OPERATOR)}, roles: [operator]}}\n"
            "rbac:\n  roles:\n    viewer: {allow: ['tools:*', 'admin:backends', 'admin:workers', 'admin:reloads']}\n"
            "    operator: {allow: ['tools:*', 'admin:*']}\n"
            f"backends:\n  - name: web\n    url: {web.url}\n")
        gateway = await launch_gateway("--config", str(config))

        async def ask(method: str, path: str, key: str | None) -> tuple[int, dict[str, Any]]:
            headers = {"Connection": "close", **({"X-API-Key": key} if key else {})}
            async with aiohttp.ClientSession() as http, http.request(method, gateway.url + path,
                                                                   headers=headers) as response:
                text = await response.text()
                return response.status, json.loads(text) if text.startswith("{") else {"text": text}

        drain = "/api/v1/admin/backends/web/drain"
        assert (await ask("GET", "/api/v1/admin/backends", None))[0] == 401
        assert (await ask("POST", drain, None))[0] == 401
        assert (await ask("GET", "/api/v1/admin/openapi.json", None))[0] == 200  # a description, no data
        assert (await ask("GET", "/ui", None))[0] == 200  # a static page; its data needs a credential
        assert (await ask("GET", "/api/v1/admin/backends", VIEWER))[0] == 200
        status, body = await ask("POST", drain, VIEWER)
        assert status == 403 and "admin:drain is not allowed" in body["error"], body
        _, view = await ask("GET", "/api/v1/admin/backends", VIEWER)
        assert not view["backends"][0]["drained"]  # the refused order changed nothing
        status, body = await ask("POST", drain, OPERATOR)
        assert status == 200 and body["drained"], body

        command = [sys.executable, "-m", "only1mcp.cli", "status", "--json", "--interval", "0.2", "--url", gateway.url]
        refused = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1 and "answered 401" in refused.stderr and "--header" in refused.stderr
        allowed = await asyncio.to_thread(subprocess.run, [*command, "--header", f"X-API-Key: {VIEWER}"],
                                          capture_output=True, text=True, timeout=60)
        assert allowed.returncode == 0, allowed.stderr
        assert json.loads(allowed.stdout)["backends"][0]["drained"] is True
    finally:
        await web.aclose()
