"""Typed aiohttp application keys."""

from __future__ import annotations

from aiohttp import web

from .backend_tokens import WorkerTokens
from .context import WorkerContext
from .jwks import WorkerKeys

__all__ = ["BACKEND_TOKENS", "CONTEXT", "ISSUER_KEYS"]

CONTEXT = web.AppKey("context", WorkerContext)
ISSUER_KEYS = web.AppKey("issuer_keys", WorkerKeys)
BACKEND_TOKENS = web.AppKey("backend_tokens", WorkerTokens)
