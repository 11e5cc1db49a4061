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
    # worker -> supervisor (PUSH/PULL)
    WORKER_READY = 10
    WORKER_HEARTBEAT = 11
    WORKER_BOOT_ERROR = 12
    STATE_APPLIED = 13


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
