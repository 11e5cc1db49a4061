"""The request path's recording, read back the way a scrape reads it (prometheus-client's multiprocess
collector over the files): counts, tool counts, histogram buckets and sums, across processes, file growth
and a reused pid."""

from __future__ import annotations

import fcntl
import threading
import time
from pathlib import Path

import pytest

from only1mcp.metrics import Metrics, RequestMetrics, prepare_dir, process_gone, read_samples
from only1mcp.metrics.families import DURATION_BUCKETS
from only1mcp.metrics.store import directory_lock


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return prepare_dir(tmp_path)


def _value(directory: Path, name: str, **labels: str) -> float:
    found = [s.value for s in read_samples(directory) if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def test_a_request_counts_its_method_backend_outcome_tool_and_duration(directory: Path) -> None:
    metrics = Metrics(directory, pid=101)
    recorder = RequestMetrics(metrics)
    for seconds in (0.0004, 0.003, 0.003, 7.0):
        recorder.request("tools/call", "h", "ok", seconds, "h_echo")
    recorder.request("tools/call", "h", "error", 0.02, "h_echo")
    recorder.request("tools/list", "", "ok", 0.0001)
    metrics.close()

    assert _value(directory, "only1mcp_requests_total", method="tools/call", backend="h", outcome="ok") == 4
    assert _value(directory, "only1mcp_requests_total", method="tools/call", backend="h", outcome="error") == 1
    assert _value(directory, "only1mcp_requests_total", method="tools/list", backend="", outcome="ok") == 1
    assert _value(directory, "only1mcp_tool_calls_total", backend="h", tool="h_echo", outcome="ok") == 4
    assert _value(directory, "only1mcp_tool_calls_total", backend="h", tool="h_echo", outcome="error") == 1
    assert not [s for s in read_samples(directory) if s.name == "only1mcp_tool_calls_total" and s.labels["tool"] == ""]
    duration = "only1mcp_request_duration_seconds"
    assert _value(directory, duration + "_count", method="tools/call", backend="h") == 5
    assert _value(directory, duration + "_sum", method="tools/call", backend="h") == pytest.approx(7.0264)
    # cumulative buckets as scraped: <= 0.5 ms holds one, <= 5 ms three, <= 25 ms four, +Inf all five
    assert _value(directory, duration + "_bucket", method="tools/call", backend="h", le="0.0005") == 1
    assert _value(directory, duration + "_bucket", method="tools/call", backend="h", le="0.005") == 3
    assert _value(directory, duration + "_bucket", method="tools/call", backend="h", le="0.025") == 4
    assert _value(directory, duration + "_bucket", method="tools/call", backend="h", le="5.0") == 4
    assert _value(directory, duration + "_bucket", method="tools/call", backend="h", le="+Inf") == 5


def test_a_value_on_a_bucket_bound_is_in_that_bucket(directory: Path) -> None:
    metrics = Metrics(directory, pid=102)
    RequestMetrics(metrics).exchange("h", DURATION_BUCKETS[0])
    metrics.close()
    assert _value(directory, "only1mcp_backend_request_duration_seconds_bucket", backend="h", le="0.0005") == 1


def test_a_method_outside_mcp_is_other(directory: Path) -> None:
    metrics = Metrics(directory, pid=103)
    recorder = RequestMetrics(metrics)
    for n in range(50):
        recorder.request(f"made/up/{n}", "", "error", 0.001)
    metrics.close()
    assert _value(directory, "only1mcp_requests_total", method="other", backend="", outcome="error") == 50
    assert not [s for s in read_samples(directory) if s.labels.get("method", "").startswith("made/")]


def test_processes_add_up_and_a_reused_pid_continues_its_totals(directory: Path) -> None:
    for pid in (201, 202, 201):
        metrics = Metrics(directory, pid=pid)
        RequestMetrics(metrics).request("ping", "", "ok", 0.001)
        metrics.close()
    assert _value(directory, "only1mcp_requests_total", method="ping", backend="", outcome="ok") == 3


def test_every_holder_of_a_sample_updates_one_value_while_the_file_grows(directory: Path) -> None:
    """A label child held by one part and the request path's bound cells are the same value in the file,
    also when cells made later live in a larger mapping than the ones made before."""
    metrics = Metrics(directory, pid=301)
    recorder = RequestMetrics(metrics)
    recorder.request("tools/call", "b0", "ok", 0.001, "b0_t")
    held = metrics.requests.labels("tools/call", "b0", "ok")
    for n in range(1, 400):  # enough label sets to grow the 64 KiB counters file several times
        recorder.request("tools/call", f"b{n}", "ok", 0.001, f"b{n}_tool_with_a_longish_name")
    held.add()
    recorder.request("tools/call", "b0", "ok", 0.001, "b0_t")
    metrics.close()
    assert _value(directory, "only1mcp_requests_total", method="tools/call", backend="b0", outcome="ok") == 3
    assert _value(directory, "only1mcp_tool_calls_total", backend="b0", tool="b0_t", outcome="ok") == 2
    assert _value(directory, "only1mcp_tool_calls_total", backend="b399", tool="b399_tool_with_a_longish_name",
                  outcome="ok") == 1
    assert (directory / "counter_301.db").stat().st_size > 1 << 16


def _total(directory: Path, method: str = "ping") -> float:
    return _value(directory, "only1mcp_requests_total", method=method, backend="", outcome="ok")


def test_a_gone_process_is_folded_into_the_archive_and_its_files_removed(directory: Path) -> None:
    for pid, calls in ((401, 3), (402, 5)):
        metrics = Metrics(directory, pid=pid)
        recorder = RequestMetrics(metrics)
        for _ in range(calls):
            recorder.request("ping", "", "ok", 0.002)
        metrics.close()
    before = read_samples(directory)
    assert process_gone(directory, 401)
    assert process_gone(directory, 402)
    assert sorted(path.name for path in directory.glob("*.db")) == ["counter_archive.db", "histogram_archive.db"]
    after = read_samples(directory)
    assert sorted(map(repr, after)) == sorted(map(repr, before))  # every sample, buckets and sums included
    assert _total(directory) == 8
    # a later process adds to the archive's totals, and its own exit folds in too
    metrics = Metrics(directory, pid=403)
    RequestMetrics(metrics).request("ping", "", "ok", 0.002)
    metrics.close()
    assert _total(directory) == 9
    assert process_gone(directory, 403)
    assert _total(directory) == 9


def test_a_reading_never_sees_a_total_go_down_while_processes_are_folded(directory: Path) -> None:
    """Readings run in another thread (their own lock, as another process's would) while dead processes'
    files are folded into the archive; a fold that meets a reading waits for the next try."""
    for pid in range(501, 541):
        metrics = Metrics(directory, pid=pid)
        RequestMetrics(metrics).request("ping", "", "ok", 0.002)
        metrics.close()
    seen: list[float] = []
    failed: list[Exception] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                seen.append(_total(directory))
            except (OSError, AssertionError) as exc:  # a file gone mid-reading, or a total off: reported below
                failed.append(exc)
                return

    reader = threading.Thread(target=read)
    reader.start()
    try:
        pending = set(range(501, 541))
        deadline = time.monotonic() + 30
        while pending and time.monotonic() < deadline:
            pending = {pid for pid in pending if not process_gone(directory, pid)}
    finally:
        done.set()
        reader.join()
    assert not pending and not failed, (pending, failed)
    assert seen and all(total == 40 for total in seen), sorted(set(seen))
    assert _total(directory) == 40


def test_a_forgotten_gauge_sample_is_gone_and_the_others_keep_writing_to_their_own(directory: Path) -> None:
    metrics = Metrics(directory, pid=106)
    up = metrics.backend_up
    kept, dropped, later = up.labels("a", "0"), up.labels("b", "0"), up.labels("b", "1")
    kept.set(1.0)
    dropped.set(1.0)
    later.set(0.0)
    metrics.breaker_state.labels("b", "0").set(2.0)
    for index in range(300):  # enough samples that the file has grown past its first mapping
        metrics.backend_up.labels("c", str(index)).set(1.0)
    assert metrics.forget([(up, ("b", "0")), (up, ("b", "1")), (metrics.breaker_state, ("b", "0"))])
    samples = read_samples(directory)
    assert not [s for s in samples if s.labels.get("backend") == "b"]
    assert _value(directory, "only1mcp_backend_up", backend="a", replica="0") == 1.0
    assert _value(directory, "only1mcp_backend_up", backend="c", replica="299") == 1.0
    kept.set(0.0)  # a cell handed out before the rewrite writes to its own sample's new place
    metrics.backend_up.labels("c", "299").set(0.0)
    assert _value(directory, "only1mcp_backend_up", backend="a", replica="0") == 0.0
    assert _value(directory, "only1mcp_backend_up", backend="c", replica="299") == 0.0
    assert _value(directory, "only1mcp_backend_up", backend="c", replica="298") == 1.0
    again = up.labels("b", "0")  # the backend comes back: a new sample, at zero
    assert again is not dropped and again.value == 0.0
    again.set(1.0)
    assert _value(directory, "only1mcp_backend_up", backend="b", replica="0") == 1.0
    metrics.close()


def test_forgetting_waits_for_no_reading_and_can_leave_the_file_empty(directory: Path) -> None:
    metrics = Metrics(directory, pid=107)
    metrics.backend_up.labels("b", "0").set(1.0)
    with directory_lock(directory, fcntl.LOCK_SH):  # a scrape is reading
        assert not metrics.forget([(metrics.backend_up, ("b", "0"))])
    assert _value(directory, "only1mcp_backend_up", backend="b", replica="0") == 1.0  # nothing changed
    assert metrics.forget([(metrics.backend_up, ("b", "0"))])
    assert not [s for s in read_samples(directory) if s.labels.get("backend") == "b"]
    metrics.close()
