"""Typed aiohttp application keys."""

from __future__ import annotations

from aiohttp import web

from .context import WorkerContext

__all__ = ["CONTEXT"]

CONTEXT = web.AppKey("context", WorkerContext)
