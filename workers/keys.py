"""Typed aiohttp application keys."""

from __future__ import annotations

from aiohttp import web

from .context import WorkerContext
from .jwks import WorkerKeys

__all__ = ["CONTEXT", "ISSUER_KEYS"]

CONTEXT = web.AppKey("context", WorkerContext)
ISSUER_KEYS = web.AppKey("issuer_keys", WorkerKeys)
