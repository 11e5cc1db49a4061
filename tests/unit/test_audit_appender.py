"""The file writer of the audit trail: appends, follows a moved file, rotates by size without losing or
repeating a line, also when several writers share the file (here two in one process, taking turns; the
test with writer processes is tests/integration/test_audit_appender.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from only1mcp.audit.appender import FileAppender, check_appendable
from only1mcp.audit.moves import MoveWatch
from only1mcp.audit.sinks import check_destination
from only1mcp.config.audit import AuditSettings
from tests.support.waiting import eventually


def _line(n: int) -> bytes:
    return b'{"n":%06d,"pad":"%s"}\n' % (n, b"x" * 40)  # every line the same size


def _numbers(*paths: Path) -> list[int]:
    found = []
    for path in paths:
        for line in path.read_bytes().splitlines():
            found.append(int(line.split(b",")[0][5:]))
    return found


def test_lines_are_appended_to_a_file_only_its_owner_reads(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_bytes(_line(0))  # a file from before: kept, appended to
    appender = FileAppender(tmp_path / "audit.log")
    appender.write(_line(1))
    appender.write(_line(2))
    assert _numbers(path) == [0, 1, 2]
    fresh = tmp_path / "fresh.log"
    FileAppender(fresh).write(_line(1))
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600


def test_a_moved_file_is_followed_by_a_new_one_at_the_path(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    appender = FileAppender(path)
    appender.write(_line(1))
    os.rename(path, tmp_path / "audit.log.1")  # what logrotate does
    appender.write(_line(2))
    assert _numbers(tmp_path / "audit.log.1") == [1] and _numbers(path) == [2]


def test_a_deleted_file_is_created_again(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    appender = FileAppender(path)
    appender.write(_line(1))
    path.unlink()
    appender.write(_line(2))
    assert _numbers(path) == [2]


def test_rotation_keeps_every_line_in_order_across_the_backups(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    size = len(_line(0))
    appender = FileAppender(path, max_bytes=size * 10, backups=50)
    for n in range(95):
        appender.write(_line(n))
    files = [tmp_path / f"audit.log.{k}" for k in range(9, 0, -1)] + [path]
    assert _numbers(*files) == list(range(95))
    assert all(f.stat().st_size == size * 10 for f in files[:-1])  # rotated when full, not before
    assert not (tmp_path / "audit.log.10").exists()


def test_the_oldest_backup_is_deleted_past_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    appender = FileAppender(path, max_bytes=len(_line(0)) * 2, backups=2)
    for n in range(10):
        appender.write(_line(n))
    assert _numbers(tmp_path / "audit.log.2", tmp_path / "audit.log.1", path) == [6, 7, 8, 9]
    assert not (tmp_path / "audit.log.3").exists()


def test_two_writers_rotate_once_per_full_file_and_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    size = len(_line(0))
    writers = [FileAppender(path, max_bytes=size * 7, backups=100) for _ in range(2)]
    for n in range(200):
        writers[n % 2].write(_line(n))
    rotated = sorted(tmp_path.glob("audit.log.*[0-9]"), key=lambda p: -int(p.suffix[1:]))
    assert sorted(_numbers(*rotated, path)) == list(range(200))
    assert all(size * 7 <= f.stat().st_size for f in rotated)
    assert len(rotated) == 200 // 7


def test_a_directory_that_does_not_exist_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        check_appendable(tmp_path / "missing" / "audit.log")
    with pytest.raises(ValueError, match=r"cannot write the audit trail to audit.path .*missing.*audit.enabled"):
        check_destination(AuditSettings(enabled=True, path=tmp_path / "missing" / "audit.log"))
    check_destination(AuditSettings(enabled=False, path=tmp_path / "missing" / "audit.log"))  # off: not checked


def test_a_syslog_socket_nobody_listens_on_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"audit.syslog .*nolog"):
        check_destination(AuditSettings(enabled=True, syslog=str(tmp_path / "nolog")))


async def test_in_an_event_loop_a_move_is_learned_from_inotify(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    watch = MoveWatch.start()
    assert watch is not None
    appender = FileAppender(path, watch=watch)
    appender.write(_line(1))
    os.rename(path, tmp_path / "audit.log.1")
    await eventually(lambda: watch.moved, 5, "the inotify event of the rename")
    appender.write(_line(2))
    path.unlink()  # a deleted file (its link count changes) is followed too
    await eventually(lambda: watch.moved, 5, "the inotify event of the unlink")
    appender.write(_line(3))
    appender.close()
    assert _numbers(tmp_path / "audit.log.1") == [1] and _numbers(path) == [3]


async def test_in_an_event_loop_a_rotation_by_another_writer_is_followed(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    size = len(_line(0))
    watch = MoveWatch.start()
    assert watch is not None
    follower = FileAppender(path, max_bytes=size * 3, backups=10, watch=watch)
    rotator = FileAppender(path, max_bytes=size * 3, backups=10)
    follower.write(_line(0))
    for n in (1, 2):
        rotator.write(_line(n))  # the third line fills the file: rotated to audit.log.1
    await eventually(lambda: watch.moved, 5, "the inotify event of the other writer's rotation")
    follower.write(_line(3))
    follower.close()
    rotator.close()
    assert _numbers(tmp_path / "audit.log.1") == [0, 1, 2] and _numbers(path) == [3]
