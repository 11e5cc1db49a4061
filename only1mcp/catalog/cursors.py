"""Proxy-minted pagination cursors over the merged lists."""

from __future__ import annotations

import base64
import binascii

__all__ = ["decode_cursor", "encode_cursor"]


def encode_cursor(kind: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{offset}".encode()).rstrip(b"=").decode()


def decode_cursor(kind: str, cursor: object) -> int | None:
    """The offset a cursor names, or None when it is not a cursor we minted for this list."""
    if not isinstance(cursor, str) or not cursor or len(cursor) > 64:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    found_kind, _, offset = text.partition(":")
    if found_kind != kind or not offset.isdigit():
        return None
    return int(offset)
