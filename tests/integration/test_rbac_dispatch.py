"""rbac through a worker's real Gateway, Dispatcher and CatalogView, fed the shared state a worker receives,
with requests whose SessionInfo carries the authenticated caller: lists hold only what the caller may use
(also page by page), and a request for anything else is answered exactly as for something that does not
exist, logged once as a denial."""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import zmq.asyncio
from only1mcp.workers.dispatch import Dispatcher
from only1mcp.workers.gateway import Gateway

from only1mcp.auth.principal import AuthMethod, Principal
from only1mcp.bus import Replica, Reporter, State
from only1mcp.bus.endpoints import Endpoints
from only1mcp.bus.messages import Role, Sender
from only1mcp.bus.state import CatalogState, ConfigState
from only1mcp.catalog.merge import Discovery, merge
from only1mcp.config.models import Settings
from only1mcp.http.client import Http1Pool
from only1mcp.metrics import Metrics, prepare_dir
from only1mcp.policy.denied import Denied
from only1mcp.policy.patterns import PolicyKind
from only1mcp.sessions import SessionInfo
from only1mcp.spec import WorkerSpec

RBAC = {
    "default_roles": ["guest"],
    "roles": {
        "guest": {"allow": ["prompts:docs_summarize"]},
        "reader": {"inherits": ["guest"], "allow": ["tools:gh_get_*", "tools:gh_list_*", "resources:file:///docs/*"]},
        "writer": {"inherits": ["reader"], "allow": ["tools:gh_*"], "deny": ["tools:gh_delete_*"]},
    },
}

SECRET_TOOL, SECRET_PROMPT = "gh_delete_repo", "docs_leak"
SECRET_URI, SECRET_TEMPLATE = "file:///secret/keys", "file:///secret/{name}"


def _discoveries(with_secrets: bool = True, extra_tools: int = 0) -> list[Discovery]:
    tools = ["get_issue", "create_issue", "list_repos", "get_user", *(f"tool_{i:02}" for i in range(extra_tools))]
    github = Discovery("github", "gh", capabilities={"tools": {}, "logging": {}},
                       tools=[{"name": name, "inputSchema": {"type": "object"}}
                              for name in [*tools, *(["delete_repo"] if with_secrets else [])]])
    docs = Discovery("docs", "docs", capabilities={"prompts": {}, "resources": {"subscribe": True}, "completions": {},
                                                   "logging": {}},
                     prompts=[{"name": "summarize"}, *([{"name": "leak"}] if with_secrets else [])],
                     resources=[{"uri": "file:///docs/a.md", "name": "a"},
                                *([{"uri": SECRET_URI, "name": "keys"}] if with_secrets else [])],
                     templates=[{"uriTemplate": "file:///docs/{path}", "name": "doc"},
                                *([{"uriTemplate": SECRET_TEMPLATE, "name": "secret"}] if with_secrets else [])])
    # A second backend with resources: without it every URI would route to the one that has them.
    wiki = Discovery("wiki", "wiki", capabilities={"resources": {}}, resources=[{"uri": "wiki://home", "name": "h"}])
    return [github, docs, wiki]


def _state(version: int, rbac: dict[str, Any], discoveries: list[Discovery], page_size: int) -> State:
    settings = Settings.model_validate({"proxy": {"page_size": page_size}, "rbac": rbac})
    return State(seq=version, config=ConfigState(version, f"d{version}", "test", 0.0, settings.model_dump(mode="json")),
                 catalog=CatalogState(version, merge(discoveries, "_", {d.backend: {"capabilities": d.capabilities}
                                                                     for d in discoveries})))


Build = Callable[..., Awaitable[Dispatcher]]


@pytest.fixture
async def build(tmp_path: Path) -> AsyncIterator[Build]:
    """A worker's Gateway and Dispatcher, given the state a worker would receive over the bus."""
    ctx = zmq.asyncio.Context()
    made: list[tuple[Gateway, Replica, Reporter]] = []

    async def make(rbac: dict[str, Any] = RBAC, *, with_secrets: bool = True, extra_tools: int = 0,
                   page_size: int = 100) -> Dispatcher:
        directory = tmp_path / f"w{len(made)}"
        directory.mkdir()
        endpoints = Endpoints.in_dir(directory)
        sender = Sender(Role.WORKER, len(made), os.getpid())
        replica, reporter = Replica(ctx, endpoints, sender), Reporter(ctx, endpoints, sender)
        spec = WorkerSpec(len(made), "127.0.0.1", 0, endpoints, 1.0, 1.0, "info", os.getpid(), str(directory))
        gateway = Gateway(spec, replica, reporter, Http1Pool(), Metrics(prepare_dir(directory)))
        made.append((gateway, replica, reporter))
        gateway.on_state(_state(1, rbac, _discoveries(with_secrets, extra_tools), page_size))
        return Dispatcher(gateway)

    yield make
    for gateway, replica, reporter in made:
        await gateway.close()
        replica.close()
        reporter.close()
    ctx.term()


def _session(*roles: str) -> SessionInfo:
    return SessionInfo("s1", "2025-11-25", caller=Principal("alice", AuthMethod.JWT, frozenset(roles)))


class _Client:
    """The client as the dispatcher's audit line would name it."""

    def peer(self) -> str:
        return "192.0.2.7"


async def _call(dispatcher: Dispatcher, session: SessionInfo, method: str, params: dict[str, Any]) -> bytes:
    return await dispatcher.request(session, {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}, None,
                                    _Client())


async def _listed(dispatcher: Dispatcher, session: SessionInfo, method: str) -> list[dict[str, Any]]:
    """Every item of a list, following nextCursor; each page no larger than the page size."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {}
    while True:
        result = orjson.loads(await _call(dispatcher, session, method, params))["result"]
        page = next(value for key, value in result.items() if key != "nextCursor")
        items += page
        if "nextCursor" not in result:
            return items
        params = {"cursor": result["nextCursor"]}


def _names(items: list[dict[str, Any]]) -> list[str]:
    return [item.get("uri") or item.get("uriTemplate") or item["name"] for item in items]


async def test_a_reader_lists_only_what_its_roles_allow(build: Build) -> None:
    dispatcher = await build()
    reader = _session("reader")
    assert _names(await _listed(dispatcher, reader, "tools/list")) == ["gh_get_issue", "gh_list_repos", "gh_get_user"]
    assert _names(await _listed(dispatcher, reader, "prompts/list")) == ["docs_summarize"]  # inherited from guest
    assert _names(await _listed(dispatcher, reader, "resources/list")) == ["file:///docs/a.md"]
    assert _names(await _listed(dispatcher, reader, "resources/templates/list")) == ["file:///docs/{path}"]


async def test_inheritance_and_a_deny_that_wins(build: Build) -> None:
    dispatcher = await build()
    tools = _names(await _listed(dispatcher, _session("writer"), "tools/list"))
    assert tools == ["gh_get_issue", "gh_create_issue", "gh_list_repos", "gh_get_user"]  # no gh_delete_repo


async def test_a_principal_without_a_configured_role_gets_the_default_roles(build: Build) -> None:
    dispatcher = await build()
    for session in (_session(), _session("offline_access")):
        assert _names(await _listed(dispatcher, session, "tools/list")) == []
        assert _names(await _listed(dispatcher, session, "prompts/list")) == ["docs_summarize"]


async def test_without_a_caller_or_without_roles_nothing_is_filtered(build: Build) -> None:
    everything = ["gh_get_issue", "gh_create_issue", "gh_list_repos", "gh_get_user", "gh_delete_repo"]
    dispatcher = await build()
    assert _names(await _listed(dispatcher, SessionInfo("s1", "2025-11-25"), "tools/list")) == everything
    off = await build({})
    assert _names(await _listed(off, _session("reader"), "tools/list")) == everything


async def test_filtered_pages_are_complete_and_disjoint(build: Build) -> None:
    rbac = {"roles": {"odd": {"allow": ["tools:gh_tool_?1", "tools:gh_tool_?3", "tools:gh_tool_?7"]}}}
    dispatcher = await build(rbac, extra_tools=60, page_size=2)
    session = _session("odd")
    pages: list[list[str]] = []
    params: dict[str, Any] = {}
    while True:
        result = orjson.loads(await _call(dispatcher, session, "tools/list", params))["result"]
        pages.append(_names(result["tools"]))
        if "nextCursor" not in result:
            break
        params = {"cursor": result["nextCursor"]}
    expected = [f"gh_tool_{i:02}" for i in range(60) if i % 10 in (1, 3, 7)]
    assert all(0 < len(page) <= 2 for page in pages)
    assert [name for page in pages for name in page] == expected  # every allowed tool once, in catalog order
    # The whole list's cursors are not this caller's: a cursor past its last page is an empty page, not more
    beyond = base64.urlsafe_b64encode(b"tools/list:30").rstrip(b"=").decode()
    assert orjson.loads(await _call(dispatcher, session, "tools/list", {"cursor": beyond}))["result"] == {"tools": []}


DENIED_REQUESTS = [
    ("tools/call", {"name": SECRET_TOOL, "arguments": {}}),
    ("prompts/get", {"name": SECRET_PROMPT}),
    ("resources/read", {"uri": SECRET_URI}),
    ("resources/subscribe", {"uri": SECRET_URI}),
    ("resources/unsubscribe", {"uri": SECRET_URI}),
    ("completion/complete", {"ref": {"type": "ref/prompt", "name": SECRET_PROMPT},
                             "argument": {"name": "a", "value": ""}}),
    ("completion/complete", {"ref": {"type": "ref/resource", "uri": SECRET_TEMPLATE},
                             "argument": {"name": "name", "value": ""}}),
]


@pytest.mark.parametrize(("method", "params"), DENIED_REQUESTS,
                         ids=["call", "prompt", "read", "subscribe", "unsubscribe", "complete-prompt",
                              "complete-template"])
async def test_a_denied_request_is_answered_as_for_something_that_does_not_exist(
        build: Build, caplog: pytest.LogCaptureFixture, method: str, params: dict[str, Any]) -> None:
    caplog.set_level(logging.INFO, logger="only1mcp.worker")
    denied = await _call(await build(), _session("writer"), method, params)
    unknown = await _call(await build(with_secrets=False), _session("writer"), method, params)
    assert b'"error"' in unknown
    assert denied == unknown
    lines = [r for r in caplog.records if r.name == "only1mcp.worker" and " 7 " in r.getMessage()]
    assert [r.levelno for r in lines] == [logging.INFO, logging.INFO]  # one line each: the denial, the unknown
    assert "denied: jwt:alice may not use" in lines[0].getMessage()
    assert "denied" not in lines[1].getMessage()


async def test_the_refusal_is_one_exception_the_audit_can_tell_apart(build: Build) -> None:
    dispatcher = await build()
    session = _session("reader")
    with pytest.raises(Denied) as refused:
        await dispatcher.answer(session, "tools/call", 7, {"name": SECRET_TOOL}, None)
    assert (refused.value.kind, refused.value.target, refused.value.caller) == (PolicyKind.TOOLS, SECRET_TOOL,
                                                                                session.caller)
    with pytest.raises(Exception) as unknown:
        await dispatcher.answer(session, "tools/call", 7, {"name": "gh_no_such_tool"}, None)
    assert not isinstance(unknown.value, Denied)


async def test_an_allowed_call_goes_on_to_its_backend(build: Build) -> None:
    dispatcher = await build()
    answer = orjson.loads(await _call(dispatcher, _session("reader"), "tools/call", {"name": "gh_get_issue"}))
    # No backend is configured in this gateway: the call got past rbac and routing refused it.
    assert "backend 'github' is not configured" in answer["error"]["message"]


async def test_a_new_config_brings_a_new_policy(build: Build) -> None:
    dispatcher = await build()
    gateway = dispatcher._gateway
    reader = _session("reader")
    assert "gh_create_issue" not in _names(await _listed(dispatcher, reader, "tools/list"))
    wider = {"roles": {**RBAC["roles"], "reader": {"allow": ["tools:gh_*"]}}}
    gateway.on_state(_state(2, wider, _discoveries(), 100))
    assert "gh_create_issue" in _names(await _listed(dispatcher, reader, "tools/list"))


async def test_a_changed_policy_tells_open_streams_that_their_lists_changed(build: Build) -> None:
    dispatcher = await build()
    gateway = dispatcher._gateway
    received: list[dict[str, Any]] = []
    gateway.streams.attach("s1", received.append)  # a client's duplex stream held by this worker
    gateway.on_state(_state(2, RBAC, _discoveries(), 50))  # another setting changed: the lists did not
    assert received == []
    gateway.on_state(_state(3, {"roles": {"reader": {"allow": ["tools:*"]}}}, _discoveries(), 50))
    assert sorted(m["method"] for m in received) == ["notifications/prompts/list_changed",
                                                     "notifications/resources/list_changed",
                                                     "notifications/tools/list_changed"]


async def _level_set_on(dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture, session: SessionInfo) -> set[str]:
    """The backends a logging/setLevel of ``session`` was sent to (no backend runs here: each one tried logs its
    failure, and the client is still answered)."""
    caplog.clear()
    answer = orjson.loads(await _call(dispatcher, session, "logging/setLevel", {"level": "debug"}))
    assert answer["result"] == {}
    return {r.getMessage().split("'")[1] for r in caplog.records if "logging/setLevel on backend" in r.getMessage()}


async def test_set_level_reaches_only_the_backends_the_caller_may_use(
        build: Build, caplog: pytest.LogCaptureFixture) -> None:
    """logging/setLevel changes a backend's logging for every client sharing it: a caller may change it only
    on backends it can use something of."""
    dispatcher = await build()
    caplog.set_level(logging.INFO, logger="only1mcp.worker")
    assert await _level_set_on(dispatcher, caplog, _session("reader")) == {"github", "docs"}
    assert await _level_set_on(dispatcher, caplog, _session("guest")) == {"docs"}  # docs_summarize only
    assert await _level_set_on(dispatcher, caplog, _session()) == {"docs"}  # the default roles: guest
    assert await _level_set_on(dispatcher, caplog, SessionInfo("s1", "2025-11-25")) == {"github", "docs"}
    nobody = await build({"roles": {"none": {"allow": ["tools:nothing"]}}})
    assert await _level_set_on(nobody, caplog, _session("none")) == set()
