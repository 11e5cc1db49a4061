"""Several processes append to one audit file with size-based rotation, as the workers of a gateway do: every
line of every writer ends up in exactly one of the files, whole.

Lines of different lengths, some longer than a pipe's atomic write (4 KiB) and than a page, so a writer
that split a line into several writes or two writers that rotated one full file twice would show here.
"""

from __future__ import annotations

import json
import multiprocessing
from collections import Counter
from pathlib import Path

import pytest

from only1mcp.audit.appender import FileAppender

pytestmark = pytest.mark.timeout(120)

WRITERS = 4
LINES = 2500
MAX_BYTES = 256 * 1024


def _write(path: str, writer: int, start: multiprocessing.synchronize.Event) -> None:
    appender = FileAppender(Path(path), max_bytes=MAX_BYTES, backups=100_000)
    start.wait(30)
    for n in range(LINES):
        pad = "x" * (9000 if n % 97 == 0 else 40 + n % 300)
        appender.write(json.dumps({"writer": writer, "n": n, "pad": pad}).encode() + b"\n")
    appender.close()


def test_writer_processes_rotating_one_file_lose_and_repeat_no_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    writers = [context.Process(target=_write, args=(str(path), w, start)) for w in range(WRITERS)]
    for process in writers:
        process.start()
    start.set()
    for process in writers:
        process.join(90)
        assert process.exitcode == 0
    files = [path, *tmp_path.glob("audit.log.*[0-9]")]
    seen: Counter[tuple[int, int]] = Counter()
    for file in files:
        data = file.read_bytes()
        assert data.endswith(b"\n"), file
        for line in data.splitlines():
            record = json.loads(line)  # a torn or interleaved line would not parse
            seen[(record["writer"], record["n"])] += 1
    assert set(seen) == {(w, n) for w in range(WRITERS) for n in range(LINES)}
    assert max(seen.values()) == 1
    rotated = [f for f in files if f != path]
    assert len(rotated) >= 10  # rotation really happened under the load
    assert all(f.stat().st_size >= MAX_BYTES for f in rotated)  # a file is rotated only once it is full
