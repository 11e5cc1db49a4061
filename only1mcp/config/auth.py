"""The `auth` section: who may use the gateway, and how they prove it."""

from __future__ import annotations

from .fields import _Strict

__all__ = ["AuthSettings"]


class AuthSettings(_Strict):
    """Authentication of clients. Env: ``ONLY1MCP_AUTH__<KEY>``."""
