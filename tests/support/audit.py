"""Audit-trail tests: clients that call tools under load and remember what was answered, and the files read back.

Each client has its own session on its own keep-alive connection (pinned to a worker when asked) and
numbers its requests ``client * 1,000,000 + n``, so a request id names one request of the whole test and a
line is matched to it by id and session hash. A request whose connection broke is never sent again under
the same id: it may have a line (written before an answer that never left), and a repeat would be a
second request.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgpack

from only1mcp.audit.line import session_hash

from .rawmcp import RawMcp, pinned

_STRIDE = 1_000_000


def sid_of(token: str) -> str:
    """The session id sealed in an Mcp-Session-Id (its payload is not secret, only its MAC is)."""
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    return str(msgpack.unpackb(raw[:-16], raw=False)[0])


def read_trail(*paths: Path) -> list[dict[str, Any]]:
    """Every line of the files, parsed; fails on a line that is not one whole JSON object."""
    lines: list[dict[str, Any]] = []
    for path in paths:
        data = path.read_bytes()
        assert not data or data.endswith(b"\n"), f"{path} ends in the middle of a line"
        for raw in data.splitlines():
            record = json.loads(raw)  # a torn or interleaved line does not parse
            assert isinstance(record, dict), raw
            lines.append(record)
    return lines


def trail_files(path: Path) -> list[Path]:
    """``path`` and its rotated files, oldest first."""
    rotated = sorted(path.parent.glob(path.name + ".*[0-9]"), key=lambda p: -int(p.suffix[1:]))
    return [*rotated, path] if path.exists() else rotated


@dataclass
class Load:
    """What clients were answered: (session hash, request id) of every request whose answer arrived."""

    answered: list[tuple[str, int]] = field(default_factory=list)
    broken: int = 0  # requests whose connection broke before an answer
    tokens: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def check(self, lines: list[dict[str, Any]]) -> None:
        """Every answered request has exactly one line; no request has two."""
        counts = Counter((line["session"], line["id"]) for line in lines)
        repeated = [key for key, count in counts.items() if count > 1]
        assert not repeated, f"requests with more than one line: {repeated[:10]}"
        missing = [key for key in self.answered if key not in counts]
        assert not missing, f"{len(missing)} answered requests have no line, e.g. {missing[:10]}"


def tool_call(request_id: int, text: str) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
                       "params": {"name": "demo_echo", "arguments": {"text": text}}}).encode()


async def run_client(url: str, index: int, load: Load, calls: int | None = None, worker: int | None = None) -> None:
    """One client: initialize, then calls back to back until ``calls`` are answered or ``load.stop``."""
    if worker is not None:
        http, _ = await pinned(url, want=worker)
    else:
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
    try:
        mcp = RawMcp(http, url, keep_alive=True)
        base = index * _STRIDE
        status, answer, headers = await mcp.post_raw(json.dumps({
            "jsonrpc": "2.0", "id": base, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "audit", "version": "1"}}
        }).encode())
        assert status == 200, answer
        mcp.session_id = headers["Mcp-Session-Id"]
        load.tokens.append(mcp.session_id)
        hashed = session_hash(sid_of(mcp.session_id))
        load.answered.append((hashed, base))
        done, n = 0, 0
        while not load.stop.is_set() and (calls is None or done < calls):
            n += 1
            request_id = base + n
            try:
                status, answer, _ = await mcp.post_raw(tool_call(request_id, f"c{n}"))
            except aiohttp.ClientError:
                load.broken += 1  # its worker died: the next request opens a new connection
                continue
            assert status == 200 and answer["id"] == request_id and "result" in answer, answer
            load.answered.append((hashed, request_id))
            done += 1
    finally:
        await http.close()
