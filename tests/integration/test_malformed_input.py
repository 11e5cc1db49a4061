"""Malformed input on every door: a precise JSON-RPC error (or, for a notification, nothing), never a 5xx,
never an unanswered request, and nothing else disturbed.

Each case was found by fuzzing: cancellations with params of the wrong type, JSON nested deeper than the
gateway re-encodes (orjson reads 1,024 levels and writes 254), a backend reply nested as deep, ids past
64 bits that came back as floats, and an initialize whose params are not an object.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from tests.support.doors import HttpDoor, LegacySseDoor, Reply, WebSocketDoor, exact
from tests.support.gateway import Gateway
from tests.support.processes import ROOT, FixtureServer
from tests.support.rawhttp import connect, open_session

pytestmark = pytest.mark.timeout(180)

NESTING_SERVER = ROOT / "tests" / "fixtures" / "nesting_server.py"
CONFIG = """
server: {{port: 0, workers: 2}}
backends:
  - name: deep
    command: {python}
    args: ["{script}"]
  - name: deephttp
    url: {url}
"""
DOORS = ["fast", "aiohttp", "legacy", "ws"]


@pytest.fixture(scope="module")
def http_backend() -> Iterator[FixtureServer]:
    server = FixtureServer("nesting_server")
    yield server
    server.close()


@pytest.fixture(scope="module")
def gateway(http_backend: FixtureServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    home = tmp_path_factory.mktemp("malformed")
    config = home / "only1mcp.yaml"
    config.write_text(CONFIG.format(python=sys.executable, script=NESTING_SERVER, url=http_backend.url))
    gateway = Gateway("--config", str(config), cwd=home)
    try:
        gateway.wait_ready()
        yield gateway
    finally:
        gateway.close()


@pytest.fixture(scope="module")
def workers_before(gateway: Gateway) -> list[tuple[int, int]]:
    return _workers(gateway)


def _workers(gateway: Gateway) -> list[tuple[int, int]]:
    return sorted((w["pid"], w["restarts"]) for w in gateway.status()["workers"])


@pytest.fixture(params=DOORS)
async def door(request: pytest.FixtureRequest, gateway: Gateway,
               workers_before: list[tuple[int, int]]) -> AsyncIterator[Any]:
    async with aiohttp.ClientSession() as http:
        if request.param in ("fast", "aiohttp"):
            yield HttpDoor(gateway.url, await open_session(gateway.url), chunked=request.param == "aiohttp")
        else:
            stream = WebSocketDoor(http, gateway.url) if request.param == "ws" else LegacySseDoor(http, gateway.url)
            await stream.open()
            try:
                yield stream
            finally:
                await stream.close()
    # Nothing was disturbed: no worker restarted, and a normal call still works.
    assert _workers(gateway) == workers_before
    async with aiohttp.ClientSession() as http:
        ws = await WebSocketDoor(http, gateway.url).open()
        answer = await ws.call(_request(1, "tools/call", {"name": "deep_echo", "arguments": {"text": "still here"}}))
        await ws.close()
    assert answer["result"]["content"][0]["text"] == "still here"


def _request(request_id: Any, method: str, params: Any = None) -> dict[str, Any]:
    message = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def _nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def _one_error(reply: Reply, door: Any) -> dict[str, Any]:
    """The one answer of a refused message: an error; on HTTP with status 400 (the stream doors answer
    a POST they accept on the stream, with 202 for the POST)."""
    assert len(reply.answers) == 1 and not reply.strays, reply
    if isinstance(door, HttpDoor):
        assert reply.status == 400, reply
    assert reply.status is None or reply.status < 500, reply
    return reply.answers[0]["error"] | {"id": reply.answers[0]["id"]}


@pytest.mark.parametrize("levels", [300, 1_000])
async def test_a_request_nested_too_deep_is_invalid_and_keeps_its_id(door: Any, levels: int) -> None:
    body = b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"deep_echo","arguments":{"text":' + \
        _nested(levels).encode() + b"}}}"
    error = _one_error(await door.send(body), door)
    assert error["code"] == -32600 and error["id"] == 7
    assert "nested deeper than 128 levels" in error["message"] and "send flatter JSON" in error["message"]


async def test_json_deeper_than_the_parser_reads_is_a_parse_error(door: Any) -> None:
    body = b'{"jsonrpc":"2.0","id":7,"method":"ping","params":{"x":' + _nested(5_000).encode() + b"}}"
    error = _one_error(await door.send(body), door)
    assert error["code"] == -32700 and error["id"] is None and "depth" in error["message"]


async def test_nesting_up_to_the_limit_is_served(door: Any) -> None:
    # message, params, arguments, then lists to 128 levels in all: passed to the backend and answered.
    message = _request(8, "tools/call", {"name": "deep_echo", "arguments": {"text": "x", "pad": json.loads(
        _nested(125))}})
    reply = await door.send(json.dumps(message).encode())
    assert len(reply.answers) == 1 and not reply.strays, reply
    assert reply.answers[0]["id"] == 8 and reply.answers[0]["result"]["content"][0]["text"] == "x"


@pytest.mark.parametrize("text", ["18446744073709551616", "-9223372036854775809", "123456789012345678901234567890",
                                  "1.0000000000000000001", "1E2", "2.5"])
async def test_number_ids_come_back_exactly_as_sent(door: Any, text: str) -> None:
    reply = await door.send(f'{{"jsonrpc":"2.0","id":{text},"method":"ping"}}'.encode())
    assert len(reply.answers) == 1 and not reply.strays, reply
    answer = reply.answers[0]
    assert answer.get("result") == {}, answer
    sent = exact(text)
    assert type(answer["id"]) is type(sent) and str(answer["id"]) == str(sent)


async def test_an_invalid_id_is_answered_with_null(door: Any) -> None:
    for request_id in ([1, 2], {"a": 1}, True, json.loads(_nested(200))):
        error = _one_error(await door.send(json.dumps(_request(request_id, "ping")).encode()), door)
        assert error["code"] == -32600 and error["id"] is None, (request_id, error)


@pytest.mark.parametrize("params", [[1, 2], {"requestId": [1]}, {"requestId": {"a": 1}}, {"requestId": None},
                                    {"requestId": 1.5}, {}])
async def test_a_cancellation_with_wrong_params_is_ignored(door: Any, gateway: Gateway, params: Any) -> None:
    reply = await door.send(json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                        "params": params}).encode(), expected=0)
    assert reply.answers == [] and not reply.strays, reply
    assert reply.status in (None, 202), reply
    # Said in the log (not once per message: repeats of a line are held back).
    gateway.wait_log(r"ignored notifications/cancelled: params.requestId must be")


async def test_initialize_params_must_be_an_object(door: Any) -> None:
    for params in ([1], {"capabilities": [1]}):
        reply = await door.send(json.dumps(_request(9, "initialize", params)).encode())
        assert len(reply.answers) == 1 and not reply.strays, reply
        error = reply.answers[0]
        assert error["id"] == 9 and error["error"]["code"] == -32602, error
        assert "initialize: params" in error["error"]["message"]
        assert reply.status is None or reply.status < 500


@pytest.mark.parametrize("backend", ["deep", "deephttp"])
@pytest.mark.parametrize("log", [False, True])
async def test_a_backend_reply_nested_too_deep_fails_the_call_naming_the_backend(
        door: Any, gateway: Gateway, backend: str, log: bool) -> None:
    reply = await door.send(json.dumps(_request(10, "tools/call", {
        "name": f"{backend}_nest", "arguments": {"levels": 300, "log": log}})).encode())
    assert len(reply.answers) == 1 and not reply.strays, reply
    assert reply.status is None or reply.status < 500, reply
    error = reply.answers[0]
    assert error["id"] == 10 and error["error"]["code"] == -32603, error
    assert error["error"]["message"].startswith(f"backend '{backend}'")
    assert "nested deeper than 128 levels" in error["error"]["message"]
    assert not reply.other  # the log message nested as deep was dropped, not sent
    gateway.wait_log(rf"backend '{backend}.*sent a message nested deeper than 128 levels")  # said once at least
    # Under the limit the same tool is answered in full.
    reply = await door.send(json.dumps(_request(11, "tools/call", {
        "name": f"{backend}_nest", "arguments": {"levels": 100}})).encode())
    assert reply.answers[0]["result"]["content"][0]["text"] == "100 levels", reply


async def test_a_huge_id_survives_the_relay_between_workers(gateway: Gateway) -> None:
    """A legacy POST that lands on the worker not holding the stream is relayed over the bus: its exact
    id must survive that too (every POST is a new connection, so some land on each worker)."""
    async with aiohttp.ClientSession() as http:
        stream = await LegacySseDoor(http, gateway.url).open()
        try:
            for n in range(12):
                text = str(2**64 + n)
                reply = await stream.send(f'{{"jsonrpc":"2.0","id":{text},"method":"ping"}}'.encode())
                assert [a["id"] for a in reply.answers] == [int(text)], reply
        finally:
            await stream.close()


async def test_refusals_after_the_body_is_read_carry_the_request_id(gateway: Gateway) -> None:
    for session in (None, "not-a-session"):
        reply = await HttpDoor(gateway.url, session).send(json.dumps(_request(12, "ping")).encode())
        assert reply.status in (400, 404) and [a["id"] for a in reply.answers] == [12], reply


async def test_an_initialize_notification_in_a_batch_is_not_answered(gateway: Gateway) -> None:
    async with connect(gateway.url) as connection:
        await connection.send(connection.post_bytes(json.dumps(_request(0, "initialize", {
            "protocolVersion": "2025-03-26", "capabilities": {},
            "clientInfo": {"name": "batch", "version": "1"}})).encode()))
        session = (await connection.response()).headers["mcp-session-id"]
    batch = [{"jsonrpc": "2.0", "method": "initialize"}, _request(13, "ping"), _request(14, "initialize")]
    reply = await HttpDoor(gateway.url, session).send(json.dumps(batch).encode())
    assert reply.status == 200 and [a["id"] for a in reply.answers] == [13, 14], reply
    assert reply.answers[1]["error"]["message"] == "initialize cannot be batched"


async def test_a_body_larger_than_one_socket_read_is_parsed(gateway: Gateway) -> None:
    """A body that reaches the fast path in several reads is handed to the door as a view of the read
    buffer, not as bytes (found by the SDK's client, which writes head and body separately). Bodies past
    256 KiB (the largest single read) always take that path: nested deep, with a huge id, and plain."""
    session = await open_session(gateway.url)
    door = HttpDoor(gateway.url, session)
    padding = "p" * 300_000
    reply = await door.send(json.dumps(_request(15, "tools/call", {
        "name": "deep_echo", "arguments": {"text": padding}})).encode())
    assert reply.status == 200 and reply.answers[0]["result"]["content"][0]["text"] == padding, reply.status
    body = f'{{"jsonrpc":"2.0","id":{2**64},"method":"ping","params":{{"pad":"{padding}"}}}}'.encode()
    reply = await door.send(body)
    assert reply.status == 200 and [a["id"] for a in reply.answers] == [2**64], reply.status
    reply = await door.send(f'{{"jsonrpc":"2.0","id":16,"method":"ping","params":{{"pad":"{padding}",'
                            f'"deep":{_nested(300)}}}}}'.encode())
    assert _one_error(reply, door) == {"code": -32600, "message": reply.answers[0]["error"]["message"], "id": 16}


@pytest.mark.parametrize(("head", "status"), [
    (b"GET /health HTTP/1.1\r\nOrigin: http://caf\xe9.example\r\n", 403),
    (b"POST /mcp HTTP/1.1\r\nOrigin: http://\xff\r\nContent-Type: application/json\r\n", 403),
    (b"POST /mcp HTTP/1.1\r\nContent-Type: application/\xe9json\r\n", 415),
    (b"POST /mcp HTTP/1.1\r\nContent-Type: application/\xe9json\r\nTransfer-Encoding: chunked\r\n", 415),
    (b"POST /mcp HTTP/1.1\r\nContent-Type: application/json\r\nMCP-Protocol-Version: 2025-\xe9\r\n", 400),
], ids=["origin-aiohttp", "origin-fast-path", "content-type-fast-path", "content-type-aiohttp", "version"])
async def test_header_bytes_that_are_not_utf8_get_a_precise_refusal(gateway: Gateway, head: bytes,
                                                                    status: int) -> None:
    """A header quoted in a refusal held bytes that are not UTF-8 (kept as surrogate escapes when read):
    encoding the refusal's JSON failed, and the client got a 500 (found by the auth fuzz)."""
    body = json.dumps(_request(17, "ping")).encode()
    async with connect(gateway.url) as connection:
        framing = b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body) if b"chunked" in head else body
        length = b"" if b"chunked" in head or head.startswith(b"GET") else b"Content-Length: %d\r\n" % len(body)
        await connection.send(head + f"Host: {connection.host}\r\nAccept: */*\r\n".encode() + length + b"\r\n"
                              + (b"" if head.startswith(b"GET") else framing))
        response = await connection.response()
    assert response.status == status, response.body
    assert response.json()["error"]["message"], response.body


def test_gateway_log_has_no_traceback(gateway: Gateway) -> None:
    # Runs last in this module: nothing above may have hit an unexpected failure inside the gateway.
    assert "Traceback (most recent call last)" not in gateway.log, gateway.log
