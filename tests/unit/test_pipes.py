"""A stdio child's stdout cut into lines where the pipe delivers it (only1mcp/backends/pipes.py)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from only1mcp.backends.pipes import LineTooLong, StdoutLines, exec_child


class Reader:
    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.ends: list[BaseException | None] = []

    def attach(self, stdout: StdoutLines) -> Reader:
        stdout.attach(self.lines.append, self.ends.append)
        return self


def test_lines_split_anywhere_come_whole_and_in_order() -> None:
    text = b'{"id":1}\n{"id":2}\n\n{"id":3}\n'
    for cut in range(len(text) + 1):
        reader = Reader().attach(stdout := StdoutLines(100))
        stdout.feed(text[:cut])
        stdout.feed(text[cut:])
        assert reader.lines == [b'{"id":1}\n', b'{"id":2}\n', b"\n", b'{"id":3}\n'], f"cut at byte {cut}"
        assert reader.ends == []


def test_a_last_line_without_its_newline_comes_before_the_end() -> None:
    reader = Reader().attach(stdout := StdoutLines(100))
    stdout.feed(b'{"id":1}\n{"id"')
    stdout.feed(b":2}")
    stdout.end(None)
    assert reader.lines == [b'{"id":1}\n', b'{"id":2}']
    assert reader.ends == [None]
    stdout.end(None)
    stdout.feed(b"more\n")
    assert reader.ends == [None] and len(reader.lines) == 2  # the end is told once, nothing after it


def test_what_arrives_before_attach_is_kept_for_it() -> None:
    stdout = StdoutLines(100)
    stdout.feed(b"one\ntw")
    stdout.feed(b"o\nthree")
    stdout.end(None)
    reader = Reader().attach(stdout)
    assert reader.lines == [b"one\n", b"two\n", b"three"]
    assert reader.ends == [None]


@pytest.mark.parametrize("pieces", [
    [b"x" * 11 + b"\n"],  # a whole line over the limit
    [b"x" * 6, b"x" * 6],  # a line growing past it, no newline yet
    [b"ok\n" + b"x" * 11],  # the unfinished rest of a read
])
def test_a_line_over_the_limit_ends_the_reading(pieces: list[bytes]) -> None:
    reader = Reader().attach(stdout := StdoutLines(10))
    for piece in pieces:
        stdout.feed(piece)
    stdout.feed(b"later\n")
    assert b"x" * 10 not in b"".join(reader.lines)
    assert len(reader.ends) == 1 and isinstance(reader.ends[0], LineTooLong)


def test_a_line_of_exactly_the_limit_is_a_line() -> None:
    reader = Reader().attach(stdout := StdoutLines(10))
    stdout.feed(b"x" * 10 + b"\n" + b"y" * 10)
    stdout.end(None)
    assert reader.lines == [b"x" * 10 + b"\n", b"y" * 10] and reader.ends == [None]


def test_a_broken_pipe_is_the_end_and_drops_the_unfinished_line() -> None:
    reader = Reader().attach(stdout := StdoutLines(100))
    stdout.feed(b"whole\nhalf")
    broken = OSError("broken")
    stdout.end(broken)
    assert reader.lines == [b"whole\n"] and reader.ends == [broken]


def test_after_detach_nothing_is_handed_on() -> None:
    stdout = StdoutLines(100)
    lines: list[bytes] = []

    def first_only(line: bytes) -> None:
        lines.append(line)
        stdout.detach()  # a reader closing while it handles a line

    stdout.attach(first_only, lambda exc: lines.append(b"end"))
    stdout.feed(b"a\nb\n")
    stdout.feed(b"c\n")
    stdout.end(None)
    assert lines == [b"a\n"]


async def test_a_real_child_s_lines_and_exit() -> None:
    script = ("import sys\n"
              "for i in range(3): sys.stdout.write('{\"n\": %d}\\n' % i); sys.stdout.flush()\n"
              "sys.stdout.write('{\"last\": true}')\n"
              "sys.stderr.write('bye\\n')\n")
    process, stdout = await exec_child(sys.executable, "-c", script, limit=1000)
    ended: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
    lines: list[bytes] = []
    stdout.attach(lines.append, ended.set_result)
    async with asyncio.timeout(30):
        assert await ended is None
        assert await process.wait() == 0
        assert process.stderr is not None and await process.stderr.read() == b"bye\n"
    assert lines == [b'{"n": 0}\n', b'{"n": 1}\n', b'{"n": 2}\n', b'{"last": true}']
