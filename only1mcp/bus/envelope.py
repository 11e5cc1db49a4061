"""The one message type on the bus and its codec."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import msgpack

__all__ = ["BusProtocolError", "Envelope", "Kind", "decode", "encode"]


class Kind(IntEnum):
    """What an envelope carries. Values are part of the wire format: append, never renumber."""

    # supervisor -> workers (PUB)
    DELTA = 1  # key set to value; value None deletes the key
    HEARTBEAT = 2  # seq = the supervisor's current seq
    # worker <-> supervisor (DEALER/ROUTER); key = request id, echoed in the reply
    SNAPSHOT_REQUEST = 3
    SNAPSHOT = 4  # seq = snapshot seq, value = the whole state mapping
    STATUS_REQUEST = 5
    STATUS = 6
    REPLAY_REQUEST = 7  # value = {sid, after}: a session's buffered GET-stream events after an event id
    REPLAY = 8  # value = [[n, message], ...]
    # workers and the stdio host -> supervisor (PUSH/PULL); key = the reporter's identity
    WORKER_READY = 10
    WORKER_HEARTBEAT = 11
    WORKER_BOOT_ERROR = 12
    STATE_APPLIED = 13
    BACKEND_STATUS = 14  # the stdio host: one child's state
    BACKEND_CHANGED = 15  # a backend announced list changes: re-discover it
    RELAY = 16  # value = {target: slot | "*", pid?, payload}: forwarded to that worker (or all)
    SESSION_SEND = 17  # value = {sid, message}: append to the session's mailbox and deliver
    SESSION_REVOKE = 18  # value = {sid, expires}: a client ended its session (DELETE)
    STANDBY_READY = 19  # a standby worker is booted and current: it can adopt a slot at once
    # supervisor -> workers on the relay PUB, topic-prefixed
    RELAYED = 20  # value = payload of a RELAY
    SESSION_EVENT = 21  # key = sid, seq = event number, value = message
    ADOPT = 22  # key = the standby's pid, value = {slot}: take over that slot now
    # worker -> supervisor, batched: {backend: {replica: {"ok": "1101", "error": str, "latency": s}}}
    CALL_OUTCOMES = 24


class BusProtocolError(ValueError):
    """A frame that is not a well-formed envelope."""


@dataclass(frozen=True, slots=True)
class Envelope:
    kind: Kind
    seq: int
    key: str
    value: Any = None


def encode(envelope: Envelope) -> bytes:
    return msgpack.packb((int(envelope.kind), envelope.seq, envelope.key, envelope.value), use_bin_type=True)


def decode(frame: bytes) -> Envelope:
    try:
        kind, seq, key, value = msgpack.unpackb(frame, raw=False, strict_map_key=False)
        return Envelope(Kind(kind), int(seq), str(key), value)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise BusProtocolError(f"malformed bus frame ({len(frame)} bytes): {exc}") from exc
