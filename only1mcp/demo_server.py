"""The built-in demo backend: a small MCP server on stdio, standard library only.

It is what the embedded default config runs, so ``only1mcp start`` works with nothing else installed:
a few tools (one reports progress), a resource and a prompt. Run it alone with
``python -m only1mcp.demo_server``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

__all__ = ["main"]

VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")

TOOLS: list[dict[str, Any]] = [
    {
        "name": "echo",
        "title": "Echo",
        "description": "Return the given text unchanged.",
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        "annotations": {"readOnlyHint": True, "idempotentHint": True},
    },
    {
        "name": "add",
        "title": "Add two numbers",
        "description": "Return a + b.",
        "inputSchema": {
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
        "outputSchema": {"type": "object", "properties": {"sum": {"type": "number"}}, "required": ["sum"]},
        "annotations": {"readOnlyHint": True, "idempotentHint": True},
    },
    {
        "name": "countdown",
        "title": "Countdown",
        "description": "Count down from n, one step every `interval` seconds, reporting progress.",
        "inputSchema": {
            "type": "object",
            "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 100},
                           "interval": {"type": "number", "minimum": 0, "maximum": 5}},
            "required": ["n"],
        },
    },
]
RESOURCES = [{"uri": "demo://readme", "name": "readme", "title": "About the demo backend",
              "mimeType": "text/plain"}]
README = "This is Only1MCP's built-in demo backend. Configure your own backends with --config."
PROMPTS = [{"name": "greet", "description": "Greet someone by name.",
            "arguments": [{"name": "name", "description": "who to greet", "required": True}]}]


class DemoServer:
    """Answers one JSON-RPC message per line; long calls run on threads so pings stay prompt."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled: set[Any] = set()

    def send(self, message: dict[str, Any]) -> None:
        line = json.dumps(message, separators=(",", ":"))
        with self._lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def reply(self, request_id: Any, result: dict[str, Any]) -> None:
        self.send({"jsonrpc": "2.0", "id": request_id, "result": result})

    def error(self, request_id: Any, code: int, message: str) -> None:
        self.send({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}})

    def handle(self, message: Any) -> None:
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            self.error(None, -32600, "expected a JSON-RPC 2.0 message object")
            return
        method, request_id = message.get("method"), message.get("id")
        params = message.get("params") or {}
        if method is None or not isinstance(params, dict):
            return  # a response or malformed notification: nothing to answer
        if method == "notifications/cancelled":
            if isinstance(params.get("requestId"), int | str):
                self._cancelled.add(params["requestId"])
            return
        if request_id is None:
            return  # other notifications (initialized, roots changed) need no answer
        handler = getattr(self, "on_" + method.replace("/", "_"), None)
        if handler is None:
            self.error(request_id, -32601, f"method not found: {method}")
            return
        try:
            handler(request_id, params)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:  # params of the wrong shape
            self.error(request_id, -32602, f"invalid params for {method}: {exc}")

    def on_initialize(self, request_id: Any, params: dict[str, Any]) -> None:
        asked = params.get("protocolVersion")
        self.reply(request_id, {
            "protocolVersion": asked if asked in VERSIONS else VERSIONS[0],
            "capabilities": {"tools": {}, "resources": {}, "prompts": {}, "logging": {}},
            "serverInfo": {"name": "only1mcp-demo", "version": "1.0.0"},
            "instructions": "Demo tools: echo, add, countdown.",
        })

    def on_ping(self, request_id: Any, params: dict[str, Any]) -> None:
        self.reply(request_id, {})

    def on_logging_setLevel(self, request_id: Any, params: dict[str, Any]) -> None:
        self.reply(request_id, {})

    def on_tools_list(self, request_id: Any, params: dict[str, Any]) -> None:
        self.reply(request_id, {"tools": TOOLS})

    def on_resources_list(self, request_id: Any, params: dict[str, Any]) -> None:
        self.reply(request_id, {"resources": RESOURCES})

    def on_resources_templates_list(self, request_id: Any, params: dict[str, Any]) -> None:
        self.reply(request_id, {"resourceTemplates": []})

    def on_resources_read(self, request_id: Any, params: dict[str, Any]) -> None:
        if params.get("uri") != "demo://readme":
            self.error(request_id, -32002, f"resource not found: {params.get('uri')}")
            return
        self.reply(request_id, {"contents": [{"uri": "demo://readme", "mimeType": "text/plain", "text": README}]})

    def on_prompts_list(self, request_id: Any, params: dict[str, Any]) -> None:
        self.reply(request_id, {"prompts": PROMPTS})

    def on_prompts_get(self, request_id: Any, params: dict[str, Any]) -> None:
        if params.get("name") != "greet":
            self.error(request_id, -32602, f"unknown prompt: {params.get('name')}")
            return
        who = (params.get("arguments") or {}).get("name", "there")
        self.reply(request_id, {"messages": [{"role": "user", "content": {"type": "text",
                                                                          "text": f"Say hello to {who}."}}]})

    def on_tools_call(self, request_id: Any, params: dict[str, Any]) -> None:
        name, args = params.get("name"), params.get("arguments") or {}
        if not isinstance(args, dict):
            self.error(request_id, -32602, "tools/call arguments must be an object")
            return
        if name == "echo":
            self.reply(request_id, {"content": [{"type": "text", "text": str(args.get("text", ""))}]})
        elif name == "add":
            try:
                total = float(args["a"]) + float(args["b"])
            except (KeyError, TypeError, ValueError):
                self.reply(request_id, {"content": [{"type": "text", "text": "a and b must be numbers"}],
                                        "isError": True})
                return
            value = int(total) if total.is_integer() else total
            self.reply(request_id, {"content": [{"type": "text", "text": str(value)}],
                                    "structuredContent": {"sum": value}})
        elif name == "countdown":
            token = (params.get("_meta") or {}).get("progressToken")
            # Read here, not on the thread: a bad argument is an error answer, not a thread that dies unheard.
            steps = max(1, min(100, int(args.get("n", 3))))
            interval = max(0.0, min(5.0, float(args.get("interval", 0.1))))
            threading.Thread(target=self._countdown, args=(request_id, steps, interval, token), daemon=True).start()
        else:
            self.error(request_id, -32602, f"unknown tool: {name}")

    def _countdown(self, request_id: Any, steps: int, interval: float, token: Any) -> None:
        for step in range(1, steps + 1):
            if request_id in self._cancelled:
                return  # a cancelled request gets no response
            time.sleep(interval)
            if token is not None:
                self.send({"jsonrpc": "2.0", "method": "notifications/progress",
                           "params": {"progressToken": token, "progress": step, "total": steps}})
        self.reply(request_id, {"content": [{"type": "text", "text": f"counted down from {steps}"}]})


def main() -> None:
    server = DemoServer()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            message = json.loads(line)
        except json.JSONDecodeError as exc:
            server.error(None, -32700, f"parse error: {exc.msg}")
            continue
        server.handle(message)


if __name__ == "__main__":
    main()
