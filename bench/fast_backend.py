"""A minimal, fast Streamable HTTP MCP backend for benchmarks: one echo tool, JSON replies.

Fast on purpose: the proxy's overhead is measured against it, so its own cost must be small.

    python -m bench.fast_backend --port 0    (prints "listening on http://127.0.0.1:PORT/mcp")
"""

from __future__ import annotations

import argparse
import asyncio
import os

import orjson
import uvloop
from aiohttp import web

TOOL = {"name": "echo", "description": "Echo the text back.",
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}}


async def handle(request: web.Request) -> web.Response:
    message = orjson.loads(await request.read())
    method = message.get("method")
    if "id" not in message:
        return web.Response(status=202)
    if method == "initialize":
        result = {"protocolVersion": message["params"].get("protocolVersion", "2025-06-18"),
                  "capabilities": {"tools": {}}, "serverInfo": {"name": "fast", "version": "1"}}
        body = orjson.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result})
        return web.Response(body=body, content_type="application/json",
                            headers={"Mcp-Session-Id": os.urandom(8).hex()})
    if method == "tools/list":
        result = {"tools": [TOOL]}
    elif method == "tools/call":
        text = (message.get("params", {}).get("arguments") or {}).get("text", "")
        result = {"content": [{"type": "text", "text": text}]}
    elif method == "ping":
        result = {}
    else:
        body = orjson.dumps({"jsonrpc": "2.0", "id": message["id"],
                             "error": {"code": -32601, "message": f"method not found: {method}"}})
        return web.Response(body=body, content_type="application/json")
    return web.Response(body=orjson.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}),
                        content_type="application/json")


async def main(port: int) -> None:
    app = web.Application()
    app.router.add_post("/mcp", handle)
    app.router.add_get("/mcp", lambda _r: web.Response(status=405))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"listening on http://127.0.0.1:{bound}/mcp", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    uvloop.run(main(parser.parse_args().port))
