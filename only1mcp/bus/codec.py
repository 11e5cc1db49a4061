"""The one envelope every frame carries, and its codec (msgpack).

A frame is ``[kind, role, slot, pid, payload]``: what it is, who sent it, and the payload's wire list.
Stream connections (the stdio host's links) put a 4-byte big-endian length before each frame.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgpack

from only1mcp.protocol.codec import ExactNumber

from .messages import SPECS, Kind, Role, Sender
from .wire import Payload

__all__ = ["LENGTH_BYTES", "BusProtocolError", "Codec", "Envelope", "decode", "encode", "unpack_extension"]

LENGTH_BYTES = 4
_KINDS = {kind.value: kind for kind in Kind}
_ROLES = {role.value: role for role in Role}
_SENDERS_KEPT = 256
# A client's request id that only its own text holds exactly (an integer past 64 bits) rides in the
# messages relayed between workers (a legacy SSE POST, a 2026-07-28 retry) as this extension type.
_EXACT_NUMBER = 1


class BusProtocolError(ValueError):
    """A frame that is not a well-formed envelope; the message says what is wrong with it."""


class Envelope(NamedTuple):
    """What a frame carries (a tuple: built on every call through a shared stdio backend)."""

    kind: Kind
    sender: Sender
    payload: Payload

    @classmethod
    def of(cls, kind: Kind, sender: Sender, payload: Payload) -> Envelope:
        """An envelope whose payload is checked to be the one its kind carries (senders use this)."""
        expected = SPECS[kind].payload
        if type(payload) is not expected:
            raise TypeError(f"{kind.name} carries {expected.__name__}, not {type(payload).__name__}")
        return cls(kind, sender, payload)


class Codec:
    """Encodes and decodes envelopes. One per endpoint: it keeps a msgpack packer (a fresh one per frame
    costs more than the frame) and the few senders it has seen."""

    __slots__ = ("_packer", "_senders")

    def __init__(self) -> None:
        self._packer = msgpack.Packer(use_bin_type=True, default=_pack_extension)
        self._senders: dict[tuple[int, int, int], Sender] = {}

    def encode(self, envelope: Envelope) -> bytes:
        sender = envelope.sender
        return self._packer.pack((envelope.kind, sender.role, sender.slot, sender.pid, envelope.payload.to_wire()))

    def encode_framed(self, envelope: Envelope) -> bytes:
        frame = self.encode(envelope)
        return len(frame).to_bytes(LENGTH_BYTES, "big") + frame

    def head(self, kind: Kind, sender: Sender) -> bytes:
        """The bytes every frame of ``kind`` from ``sender`` starts with: its envelope up to the payload.
        ``head + packer.pack(field values)`` is the frame ``encode`` makes of that payload (see
        ``FramedChannel.send_fields``)."""
        return b"\x95" + b"".join(self._packer.pack(int(value)) for value in (kind, sender.role, sender.slot,
                                                                               sender.pid))

    @property
    def packer(self) -> msgpack.Packer:
        return self._packer

    def decode(self, frame: bytes) -> Envelope:
        return self.envelope(self.unpack(frame), len(frame))

    def unpack(self, frame: bytes) -> list[Any]:
        """A frame's envelope as a list of 5 (kind, role, slot, pid, payload), none of them checked yet."""
        try:
            raw = msgpack.unpackb(frame, raw=False, strict_map_key=False, ext_hook=unpack_extension)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise BusProtocolError(f"malformed bus frame ({len(frame)} bytes): {exc}") from exc
        if type(raw) is not list or len(raw) != 5:
            raise BusProtocolError(f"malformed bus frame ({len(frame)} bytes): not an envelope of 5 fields")
        return raw

    def envelope(self, raw: list[Any], size: int) -> Envelope:
        """The checked envelope of an unpacked frame (``size``: the frame's length, for errors)."""
        kind = _KINDS.get(raw[0]) if type(raw[0]) is int else None  # a list there is not even hashable
        if kind is None:
            raise BusProtocolError(f"malformed bus frame ({size} bytes): unknown kind {raw[0]!r}")
        sender = self._sender(raw[1], raw[2], raw[3], kind)
        try:
            payload = SPECS[kind].payload.from_wire(raw[4])
        except ValueError as exc:  # WireError names the field
            raise BusProtocolError(f"malformed {kind.name} frame ({size} bytes): {exc}") from None
        return Envelope(kind, sender, payload)

    def _sender(self, role: object, slot: object, pid: object, kind: Kind) -> Sender:
        key = (role, slot, pid)
        try:
            return self._senders[key]  # type: ignore[index]
        except (KeyError, TypeError):
            pass
        if role not in _ROLES or type(slot) is not int or type(pid) is not int:
            raise BusProtocolError(f"malformed {kind.name} frame: bad sender {key!r}")
        sender = Sender(_ROLES[role], slot, pid)  # type: ignore[index]
        if len(self._senders) >= _SENDERS_KEPT:
            self._senders.clear()
        self._senders[key] = sender  # type: ignore[index]
        return sender


def _pack_extension(value: object) -> msgpack.ExtType:
    if type(value) is ExactNumber:
        return msgpack.ExtType(_EXACT_NUMBER, value.text.encode("ascii"))
    raise TypeError(f"cannot put a {type(value).__name__} on the bus")


def unpack_extension(code: int, data: bytes) -> object:
    if code == _EXACT_NUMBER:
        return ExactNumber(data.decode("ascii"))
    raise ValueError(f"unknown msgpack extension type {code}")


def encode(envelope: Envelope) -> bytes:
    """One-off encoding (tests, rare paths); endpoints use their own Codec."""
    return Codec().encode(envelope)


def decode(frame: bytes) -> Envelope:
    return Codec().decode(frame)
