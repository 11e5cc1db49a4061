"""The process architecture with real processes: a supervisor, its workers, one shared port."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from only1mcp.spec import EXIT_BOOT, EXIT_CONFIG
from tests.support.gateway import pid_alive, session_members
from tests.support.waiting import eventually, wait_until

pytestmark = pytest.mark.timeout(120)


def test_four_workers_share_the_port(start_gateway) -> None:
    gateway = start_gateway("--port", "0", "--workers", "4")
    pids = set()
    for _ in range(100):
        code, body = gateway.get("/health")
        assert code == 200 and body["status"] == "ok"
        pids.add(body["pid"])
    assert len(pids) >= 2, f"100 new connections all reached one worker: {pids}"
    assert pids <= set(gateway.worker_pids())
    status = gateway.status()
    assert [w["slot"] for w in status["workers"]] == [0, 1, 2, 3]
    assert all(w["ready"] and w["restarts"] == 0 and w["started_at"] > 0 for w in status["workers"])
    assert status["config"]["version"] == 1 and status["supervisor"]["uptime"] > 0
    assert status["served_by"]["pid"] in pids


async def _hammer(url: str, stop: asyncio.Event, outcomes: dict[int | None, list[bool]]) -> None:
    """Keep one keep-alive connection busy; record each request's outcome under the worker it reached."""
    pid: int | None = None
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        while not stop.is_set():
            try:
                async with session.get(url + "/health") as response:
                    pid = (await response.json())["pid"]
                    outcomes.setdefault(pid, []).append(response.status == 200)
            except aiohttp.ClientError:
                outcomes.setdefault(pid, []).append(False)  # charged to the worker it was talking to
                return


async def test_killed_worker_is_replaced_and_others_keep_serving(launch_gateway) -> None:
    gateway = await launch_gateway("--port", "0", "--workers", "4")
    before = (await gateway.fetch_status())["workers"]
    victim = before[1]["pid"]
    survivors = {w["pid"] for w in before} - {victim}
    stop = asyncio.Event()
    outcomes: dict[int | None, list[bool]] = {}
    tasks = [asyncio.create_task(_hammer(gateway.url, stop, outcomes)) for _ in range(8)]
    await eventually(lambda: len(survivors & set(outcomes)) >= 2, 10,
                     "keep-alive load on at least two surviving workers")
    os.kill(victim, signal.SIGKILL)

    async def replacement_serving() -> int | None:
        async with aiohttp.ClientSession() as session:
            for _ in range(20):
                try:
                    async with session.get(gateway.url + "/health", headers={"Connection": "close"}) as response:
                        body = await response.json()
                except aiohttp.ClientError:
                    continue  # a connection the kernel had queued on the killed worker's socket is reset
                if body["slot"] == 1 and body["pid"] != victim:
                    return body["pid"]
        return None

    # A standby takes the slot within tens of milliseconds, also under load (bench.lifecycle measures it);
    # the deadline only catches a slot that is never filled.
    replacement = await eventually(replacement_serving, 20, "a replacement in slot 1 serving")
    stop.set()
    await asyncio.gather(*tasks)
    survivor_outcomes = {pid: oks for pid, oks in outcomes.items() if pid in survivors}
    assert len(survivor_outcomes) >= 2
    assert all(all(oks) for oks in survivor_outcomes.values()), "a request to a surviving worker failed"
    status = await gateway.fetch_status()
    assert status["workers"][1]["pid"] == replacement and status["workers"][1]["restarts"] == 1
    assert {w["pid"] for w in status["workers"]} - {replacement} == survivors  # no other worker was replaced


async def test_sigterm_drains_in_flight_request(launch_gateway) -> None:
    gateway = await launch_gateway("--port", "0", "--workers", "2")
    pids = await gateway.fetch_worker_pids()
    sid = gateway.process.pid
    async with aiohttp.ClientSession() as session:
        # A long-poll that stays in flight for 2 s: it must complete even though SIGTERM comes first.
        started = time.monotonic()
        slow = asyncio.create_task(session.get(gateway.url + "/api/v1/admin/wait?config_version=99&timeout=2"))

        async def slow_request_in_flight() -> bool:  # the probe itself is one request in flight
            async with aiohttp.ClientSession() as probe, probe.get(
                gateway.url + "/health", headers={"Connection": "close"}
            ) as response:
                return (await response.json())["in_flight"] >= 2

        await eventually(slow_request_in_flight, 5, "the slow request to reach its worker")
        gateway.signal(signal.SIGTERM)
        response = await slow
        body = await response.json()
    assert response.status == 504 and body["reached"] is False  # the long-poll ran to its own end
    # A lower bound, not a speed: an answer before the long-poll's 2 s would mean the drain cut it short.
    assert time.monotonic() - started >= 1.5
    assert await gateway.exited(30) == 0
    await eventually(lambda: not any(pid_alive(p) for p in pids), 5, "workers to be gone")
    # multiprocessing's resource tracker leaves when it reads EOF, just after the supervisor exits.
    await eventually(lambda: session_members(sid) == [], 5, "every child of the supervisor to exit")


def test_sighup_reload_keeps_old_config_on_error_and_spreads_new_one(start_gateway, tmp_path: Path) -> None:
    config = tmp_path / "only1mcp.yaml"
    config.write_text("server:\n  port: 0\n  workers: 4\nbackends: []\n")
    gateway = start_gateway("--config", str(config))
    assert {w["config_version"] for w in gateway.status()["workers"]} == {1}

    config.write_text("server:\n  port: 0\n  workers: 4\nbackends:\n  - name: x\n    comand: y\n")
    mark = len(gateway.lines)
    gateway.signal(signal.SIGHUP)
    gateway.wait_log(rf"{config}:6:5: error: .*unknown key 'comand'; did you mean 'command'", after=mark)
    gateway.wait_log(r"still serving version 1", after=mark)
    assert gateway.status()["config"]["reloads"]["failed"] == 1
    code, body = gateway.get("/health")
    assert code == 200 and body["config_version"] == 1

    config.write_text("server:\n  port: 0\n  workers: 4\nbackends:\n  - name: x\n    command: y\n")
    gateway.signal(signal.SIGHUP)
    pids = set(gateway.worker_pids())
    seen: dict[int, int] = {}

    def all_workers_on_v2() -> bool:
        code, body = gateway.get("/health")
        assert code == 200
        seen[body["pid"]] = body["config_version"]
        return set(seen) == pids and all(v == 2 for v in seen.values())

    # Every worker serves version 2 some 20 ms after the signal (bench.lifecycle measures it); the deadline
    # only catches a version that never arrives.
    wait_until(all_workers_on_v2, 10, "config version 2 on every worker")
    status = gateway.status()
    assert {w["config_version"] for w in status["workers"]} == {2}
    assert status["config"]["reloads"]["failed"] == 1 and status["config"]["reloads"]["ok"] == 1
    assert set(gateway.worker_pids()) == pids  # spread to the running workers, none restarted


def test_reload_reports_settings_that_need_a_restart(start_gateway, tmp_path: Path) -> None:
    config = tmp_path / "only1mcp.yaml"
    config.write_text("server:\n  port: 0\n  workers: 1\n")
    gateway = start_gateway("--config", str(config))
    config.write_text("server:\n  port: 0\n  workers: 3\n")
    gateway.signal(signal.SIGHUP)
    gateway.wait_log(r"server.workers changed to 3; restart the supervisor to apply it")
    assert len(gateway.status()["workers"]) == 1


def test_port_in_use_refuses_to_start(start_gateway) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        gateway = start_gateway("--port", str(port), "--workers", "2", ready=False)
        assert gateway.wait_exit() == EXIT_CONFIG
    assert f"cannot listen on 127.0.0.1:{port}: another server is already listening there" in gateway.log


def test_worker_boot_failure_stops_the_supervisor(start_gateway) -> None:
    # Bound but not listening: the supervisor's probe finds no listener, so the workers' bind fails.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        gateway = start_gateway("--port", str(port), "--workers", "2", ready=False)
        assert gateway.wait_exit() == EXIT_BOOT
    assert "failed to boot: cannot listen on 127.0.0.1" in gateway.log
    assert "address already in use" in gateway.log.lower()
    assert "restarting in" not in gateway.log
    wait_until(lambda: session_members(gateway.process.pid) == [], 5, "every child of the supervisor to exit")


def test_stuck_worker_is_killed_and_replaced(start_gateway) -> None:
    gateway = start_gateway("--port", "0", "--workers", "2",
                            env={"ONLY1MCP_SERVER__HEARTBEAT_INTERVAL": "0.2",
                                 "ONLY1MCP_SERVER__WORKER_TIMEOUT": "1.5"})
    stuck = gateway.status()["workers"][0]["pid"]
    os.kill(stuck, signal.SIGSTOP)  # its event loop stops: no more heartbeats
    # The time bound is the behaviour here: the supervisor must notice after worker_timeout (1.5 s). The
    # deadline is generous so that only a supervisor that never notices fails, not a slow box.
    gateway.wait_log(rf"worker 0 \(pid {stuck}\) sent no heartbeat", timeout=10)

    def replaced() -> bool:
        status = gateway.try_status()
        worker = status["workers"][0] if status else {}
        return worker.get("pid") not in (None, stuck) and bool(worker.get("ready"))

    wait_until(replaced, 10, "a replacement in slot 0")
    assert not pid_alive(stuck)


_SLOW_BOOT = """import sys, time
# Every process the supervisor spawns (multiprocessing's spawn start) boots this much slower, as on a loaded
# host with a cold disk cache; the supervisor itself does not.
if "--multiprocessing-fork" in sys.argv:
    time.sleep({seconds})
"""


def test_a_slow_booting_worker_is_not_killed_for_silence(start_gateway, tmp_path: Path) -> None:
    """worker_timeout is for an event loop that stopped: a worker still booting (imports, first state) has
    sent no heartbeat yet and is given the boot's own deadline, or a boot slower than worker_timeout would be
    killed and restarted forever."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(_SLOW_BOOT.format(seconds=2.5))
    path = os.pathsep.join(p for p in (str(hooks), os.environ.get("PYTHONPATH", "")) if p)
    gateway = start_gateway("--port", "0", "--workers", "2", ready=False,
                            env={"PYTHONPATH": path, "ONLY1MCP_SERVER__HEARTBEAT_INTERVAL": "0.2",
                                 "ONLY1MCP_SERVER__WORKER_TIMEOUT": "1.0"})
    gateway.wait_ready(40)
    assert "sent no heartbeat" not in gateway.log
    assert all(worker["restarts"] == 0 for worker in gateway.status()["workers"])


def test_workers_exit_when_the_supervisor_dies(start_gateway) -> None:
    gateway = start_gateway("--port", "0", "--workers", "2")
    pids = gateway.worker_pids()
    gateway.process.kill()
    gateway.wait_exit()
    wait_until(lambda: not any(pid_alive(p) for p in pids), 10, "workers to exit after the supervisor died")


def test_bus_runtime_dir_is_private(start_gateway, short_tmp_path: Path) -> None:
    base = short_tmp_path / "run"
    gateway = start_gateway("--port", "0", "--workers", "1", env={"ONLY1MCP_SERVER__RUNTIME_DIR": str(base)})
    (runtime,) = list(base.iterdir())
    assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
    assert {"state.sock", "snapshot.sock", "observe.sock", "relay.sock"} <= {p.name for p in runtime.iterdir()}
    gateway.signal(signal.SIGTERM)
    assert gateway.wait_exit() == 0
    assert not runtime.exists()


def test_admin_wait_rejects_bad_parameters(start_gateway) -> None:
    gateway = start_gateway("--port", "0", "--workers", "1")
    code, _ = gateway.get("/api/v1/admin/wait?config_version=1&timeout=0")
    assert code == 200
    for query, expected in (("", "missing query parameter 'config_version'"),
                            ("config_version=abc", "must be a number, got 'abc'"),
                            ("config_version=1&timeout=999", "must be between 0 and 60")):
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(gateway.url + "/api/v1/admin/wait?" + query, timeout=5)
        assert caught.value.code == 400 and expected in caught.value.read().decode()
