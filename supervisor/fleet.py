"""Every process the supervisor keeps: N worker slots, the standby workers and the stdio host.

Reports from all of them (ready, heartbeat, state applied, boot error, standby ready) arrive here and are
matched to the place that sent them by the sender in the envelope (role, slot, pid); a report from a
previous occupant of a slot is ignored. The supervisor's loop calls ``murder()`` (kill the silent) and
``manage()`` (start what is due); exits are handled as they happen.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import time
from collections.abc import Callable
from typing import Any

from only1mcp.bus import Envelope, Kind, MessageRouter, Role, Target
from only1mcp.bus.messages import STANDBYS, Adopt, BootError, ProcessReport, Sender
from only1mcp.bus.relay import RelayPublisher
from only1mcp.spec import STDIO_HOST_ENTRY, WORKER_ENTRY, HostSpec, WorkerSpec

from .processes import Exit, Watched, restart_backoff

__all__ = ["BOOT_SILENCE", "Fleet", "Specs"]

# A process that has sent no heartbeat yet is still booting (a fresh interpreter's imports, the first state
# snapshot): on a loaded host with a cold disk cache that takes seconds, longer than a worker_timeout tuned
# for a stopped event loop. It is given this long before it counts as hung.
BOOT_SILENCE = 30.0

log = logging.getLogger("only1mcp.supervisor")


class Specs:
    """What each kind of process is started with (built from the current settings)."""

    def __init__(self, worker: Callable[[int, bool], WorkerSpec], host: Callable[[], HostSpec]) -> None:
        self.worker = worker
        self.host = host


class Fleet:
    __slots__ = ("_halt", "_host_exited", "_mp", "_on_ready", "_relay", "_sender", "_specs", "_standby_backoff",
                 "_standby_retry_at", "_wake", "host", "host_wanted", "slots", "standby_size", "standbys", "stopping")

    def __init__(self, workers: int, standby_size: int, specs: Specs, relay: RelayPublisher, sender: Sender,
                 *, halt: Callable[[str], None], wake: Callable[[], None], on_ready: Callable[[], None],
                 host_exited: Callable[[bool], None]) -> None:
        self._mp = multiprocessing.get_context("spawn")
        self._specs = specs
        self._relay = relay
        self._sender = sender
        self._halt = halt
        self._wake = wake
        self._on_ready = on_ready
        self._host_exited = host_exited
        self.slots = [Watched(f"worker {index}", self._worker_exited, self._mp) for index in range(workers)]
        self.standby_size = standby_size
        self.standbys: dict[int, Watched] = {}
        self._standby_backoff = restart_backoff()
        self._standby_retry_at = 0.0
        self.host = Watched("stdio host", self._host_gone, self._mp)
        self.host_wanted = False
        self.stopping = False

    def register(self, router: MessageRouter) -> None:
        router.register(Kind.READY, self._ready)
        router.register(Kind.PROCESS_HEARTBEAT, self._heartbeat)
        router.register(Kind.STATE_APPLIED, self._heartbeat)
        router.register(Kind.BOOT_ERROR, self._boot_error)
        router.register(Kind.STANDBY_READY, self._standby_ready)

    # ------------------------------------------------------------ starting

    def start(self) -> None:
        for index, slot in enumerate(self.slots):
            self._start_worker(slot, index)
        self.fill_standbys()

    def _start_worker(self, slot: Watched, index: int) -> None:
        slot.start(WORKER_ENTRY, self._specs.worker(index, False))
        log.info("worker %d started (pid %d)", index, slot.pid)

    def fill_standbys(self) -> None:
        if self.stopping or time.monotonic() < self._standby_retry_at:
            return
        while len(self.standbys) < self.standby_size:
            place = Watched("standby", self._standby_exited, self._mp)
            place.start(WORKER_ENTRY, self._specs.worker(-1, True))
            self.standbys[place.pid] = place
            log.info("standby worker started (pid %d)", place.pid)

    def want_host(self, wanted: bool) -> None:
        """Run the stdio host while any shared stdio backend is configured."""
        self.host_wanted = wanted
        if wanted and not self.host.alive and self.host.restart_at is None and not self.stopping:
            self.host.start(STDIO_HOST_ENTRY, self._specs.host())
            log.info("stdio host started (pid %d)", self.host.pid)

    # ------------------------------------------------------------ reports

    def _place(self, sender: Sender) -> Watched | None:
        if sender.role is Role.WORKER and 0 <= sender.slot < len(self.slots):
            place = self.slots[sender.slot]
        elif sender.role is Role.STANDBY:
            place = self.standbys.get(sender.pid)  # type: ignore[assignment]
        elif sender.role is Role.STDIO_HOST:
            place = self.host
        else:
            return None
        if place is None or place.pid != sender.pid:
            return None  # a previous occupant's report, still in flight
        return place

    def _heartbeat(self, envelope: Envelope) -> None:
        place = self._place(envelope.sender)
        if place is not None:
            place.heard(envelope.payload if isinstance(envelope.payload, ProcessReport) else None)

    def _ready(self, envelope: Envelope) -> None:
        place = self._place(envelope.sender)
        if place is None:
            return
        place.heard(envelope.payload)  # type: ignore[arg-type]
        place.ready = True
        self._on_ready()

    def _standby_ready(self, envelope: Envelope) -> None:
        place = self._place(envelope.sender)
        if place is not None:
            place.heard()
            place.ready = True

    def _boot_error(self, envelope: Envelope) -> None:
        place = self._place(envelope.sender)
        if place is not None and isinstance(envelope.payload, BootError):
            place.boot_error = envelope.payload.error  # its exit (code 3) follows and stops the gateway

    @property
    def all_ready(self) -> bool:
        return all(slot.ready and slot.alive for slot in self.slots)

    # ------------------------------------------------------------ the loop's verbs

    def murder(self, timeout: float) -> None:
        """Kill processes whose event loop stopped heartbeating (hung, or stopped); their exit refills the
        place."""
        now = time.monotonic()
        for place in [*self.slots, *self.standbys.values(), self.host]:
            silent = place.silent_for(now)
            if silent > (timeout if place.heard_from else max(timeout, BOOT_SILENCE)):
                log.error("%s (pid %d) sent no %s for %.1fs; killing it", place.name, place.pid,
                          "heartbeat" if place.heard_from else "first heartbeat since it started", silent)
                place.signal(signal.SIGKILL)
                place.last_heartbeat = now  # one kill per timeout, even if the exit is slow to show

    def manage(self) -> None:
        """Start a replacement in every empty place whose backoff has passed."""
        if self.stopping:
            return
        now = time.monotonic()
        for index, slot in enumerate(self.slots):
            if slot.due(now):
                slot.restarts += 1
                self._start_worker(slot, index)
        if self.host.due(now):
            self.host.restart_at = None
            self.host.restarts += 1
            self.want_host(self.host_wanted)
        self.fill_standbys()

    def next_due(self) -> float | None:
        due = [p.restart_at for p in [*self.slots, self.host] if p.restart_at is not None]
        if self._standby_retry_at > time.monotonic():
            due.append(self._standby_retry_at)
        return min(due) if due else None

    # ------------------------------------------------------------ exits

    def _boot_failed(self, place: Watched, exit_: Exit) -> bool:
        if not exit_.boot_error:
            return False
        reason = place.boot_error or f"{exit_.describe()}; see its log lines above"
        self._halt(f"{place.name} (pid {exit_.pid}) failed to boot: {reason}; stopping instead of restarting it")
        return True

    def _worker_exited(self, slot: Watched, exit_: Exit) -> None:
        self._wake()
        index = self.slots.index(slot)
        if self.stopping:
            log.info("worker %d exited (%s)", index, exit_.describe())
            return
        if self._boot_failed(slot, exit_):
            return
        spare = self._take_standby()
        if spare is not None:
            pid = spare.pid or 0
            log.error("worker %d died (%s) after %.1fs; standby pid %d takes its slot", index, exit_.describe(),
                      exit_.uptime, pid)
            slot.restarts += 1
            slot.adopt(spare, booted=False)
            self._relay.publish(Envelope.of(Kind.ADOPT, self._sender, Adopt(Target(STANDBYS, pid), index, exit_.pid)))
            return
        delay = slot.schedule_restart(exit_.uptime)
        log.error("worker %d died (%s) after %.1fs; restarting in %.2fs", index, exit_.describe(), exit_.uptime,
                  delay)

    def _take_standby(self) -> Any:
        for pid, place in list(self.standbys.items()):
            if place.ready and place.alive:
                del self.standbys[pid]
                return place.release()
        return None

    def _standby_exited(self, place: Watched, exit_: Exit) -> None:
        self.standbys.pop(next((pid for pid, p in self.standbys.items() if p is place), -1), None)
        self._wake()
        if self.stopping or self._boot_failed(place, exit_):
            return
        delay = self._standby_backoff.next_delay(exit_.uptime)
        self._standby_retry_at = time.monotonic() + delay
        log.warning("standby worker exited (%s); replacing it in %.2fs", exit_.describe(), delay)

    def _host_gone(self, host: Watched, exit_: Exit) -> None:
        self._wake()
        self._host_exited(self.stopping)  # its children go with it
        if self.stopping or self._boot_failed(host, exit_):
            return
        delay = host.schedule_restart(exit_.uptime)
        log.error("stdio host died (%s) after %.1fs; restarting in %.2fs", exit_.describe(), exit_.uptime, delay)

    # ------------------------------------------------------------ stopping

    async def stop(self, drain: float, forced: asyncio.Event) -> None:
        """SIGTERM every worker and standby, wait for them (``drain``, or until ``forced``), kill the rest;
        then the stdio host (its children close with it)."""
        self.stopping = True
        workers = [p for p in [*self.slots, *self.standbys.values()] if p.alive]
        for place in workers:
            place.signal(signal.SIGTERM)
        waiting = asyncio.gather(*(p.wait_gone(drain) for p in workers))
        force = asyncio.ensure_future(forced.wait())
        await asyncio.wait([waiting, force], return_when=asyncio.FIRST_COMPLETED)
        force.cancel()
        for place in workers:
            if place.alive:
                log.warning("%s (pid %d) did not stop in time; killing it", place.name, place.pid)
                place.kill_now()
        await asyncio.gather(waiting, return_exceptions=True)
        if self.host.alive:
            self.host.signal(signal.SIGTERM)
            if not await self.host.wait_gone(10.0):
                log.warning("stdio host did not stop in time; killing it")
                self.host.kill_now()

    def describe(self) -> dict[str, Any]:
        return {
            "workers": [{"slot": index, **slot.describe()} for index, slot in enumerate(self.slots)],
            "standby": [{"pid": pid, "ready": place.ready} for pid, place in self.standbys.items()],
            "stdio_host": self.host.describe() if self.host_wanted or self.host.alive else None,
        }
