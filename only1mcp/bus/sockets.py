"""Small helpers shared by both ends of the bus."""

from __future__ import annotations

import zmq
import zmq.asyncio

from .codec import Codec, Envelope

__all__ = ["send_now"]


def send_now(socket: zmq.asyncio.Socket, codec: Codec, envelope: Envelope, *prefix: bytes) -> bool:
    """Send without waiting; False when the peer's queue is full (PUSH) or the frame was refused.

    PUB never blocks (it drops for slow subscribers, which then re-snapshot), so state publishing and
    worker reports never stall an event loop.
    """
    frames = [*prefix, codec.encode(envelope)]
    future = socket.send_multipart(frames, flags=zmq.DONTWAIT)
    return not (future.done() and future.exception() is not None)
