"""Protected Resource Metadata (RFC 9728): where a client that got a 401 learns which authorization server
issues tokens for this gateway. Served without credentials, at the well-known path and at its form with
the resource's path as suffix (/.well-known/oauth-protected-resource/mcp)."""

from __future__ import annotations

from aiohttp import web

from only1mcp.auth.challenge import WELL_KNOWN

from .gateway import Gateway

__all__ = ["PATHS", "ResourceMetadata"]

PATHS = (WELL_KNOWN, WELL_KNOWN + "/mcp")


class ResourceMetadata:
    __slots__ = ("_gateway",)

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    async def get(self, request: web.Request) -> web.Response:
        protected = self._gateway.protected
        if protected is None:
            return web.json_response({"error": "authentication is off on this gateway (auth.mode none): it is not "
                                               "a protected resource"}, status=404)
        return web.Response(body=protected.metadata, content_type="application/json",
                            headers={"Cache-Control": "max-age=300"})
