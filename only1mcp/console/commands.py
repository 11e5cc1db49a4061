"""``only1mcp top`` (a live view refreshed every second until q) and ``only1mcp status`` (the same once)."""

from __future__ import annotations

import contextlib
import json
import os
import select
import sys
import termios
import time
import tty
from collections.abc import Iterator

from rich.console import Console
from rich.live import Live

from .client import AdminClient, ConsoleError, Reading, rates
from .view import document, render

__all__ = ["status", "top"]

EXIT_OK, EXIT_UNREACHABLE = 0, 1


def status(client: AdminClient, as_json: bool, interval: float) -> int:
    """Two readings ``interval`` seconds apart (rates need two), printed once."""
    try:
        first = client.read()
        time.sleep(interval)  # the window the rates are measured over, not a wait for a condition
        second = client.read()
    except ConsoleError as exc:
        print(f"only1mcp status: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    between = rates(first, second)
    if as_json:
        print(json.dumps(document(second, between), indent=2))
    else:
        Console().print(render(second, between, client.url))
    return EXIT_OK


def top(client: AdminClient, interval: float) -> int:
    """Refresh every ``interval`` seconds until q (or Ctrl-C); a failed reading is shown, and retried."""
    console = Console()
    previous: Reading | None = None
    with _keys() as pressed, Live(console=console, auto_refresh=False, screen=False) as live:
        while True:
            try:
                reading = client.read()
            except ConsoleError as exc:
                live.update(f"[red]{exc}[/red] (retrying; q quits)", refresh=True)
            else:
                live.update(render(reading, rates(previous, reading), client.url), refresh=True)
                previous = reading
            if pressed(interval) in ("q", "Q"):
                return EXIT_OK


@contextlib.contextmanager
def _keys() -> Iterator[object]:
    """A function that waits up to its argument in seconds for a key and returns it ("" for none). The
    terminal is in cbreak mode meanwhile (keys arrive without Enter) and restored after."""
    stdin = sys.stdin
    if not stdin.isatty():
        yield lambda timeout: _read_key(stdin.fileno(), timeout)
        return
    fd = stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    try:
        yield lambda timeout: _read_key(fd, timeout)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _read_key(fd: int, timeout: float) -> str:
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return ""
    data = os.read(fd, 1)
    return data.decode("utf-8", "replace") if data else "q"  # end of input: nothing more can ask to go on
