"""The test OpenID Connect provider (tests/fixtures/oidc_provider.py) as a process, and its controls."""

from __future__ import annotations

from typing import Any

import aiohttp

from .processes import FixtureServer

__all__ = ["OidcProvider"]


class OidcProvider:
    """A running provider: ``issuer`` is its issuer URL; the methods drive its test-only controls."""

    def __init__(self, server: FixtureServer) -> None:
        self.server = server
        self.issuer = server.url
        path_start = server.url.find("/", len("http://"))
        self.origin = server.url if path_start < 0 else server.url[:path_start]
        self.jwks_uri = f"{self.origin}/jwks"
        self.token_endpoint = f"{self.origin}/token"

    @classmethod
    def start(cls, *args: str) -> OidcProvider:
        """For sync (module-scoped) fixtures: start it and wait, with a deadline, until it serves."""
        return cls(FixtureServer("oidc_provider", *args))

    @classmethod
    async def launch(cls, *args: str) -> OidcProvider:
        """Start it on a port the OS chooses and wait (with a deadline) until it serves."""
        return cls(await FixtureServer.launch("oidc_provider", *args))

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http, http.request(
                method, self.origin + path, json=body) as response:
            if response.status != 200:
                raise AssertionError(f"provider {method} {path}: {response.status} {await response.text()}")
            return await response.json()

    async def mint(self, alg: str = "RS256", claims: dict[str, Any] | None = None,
                   header: dict[str, Any] | None = None, kid: str | None = None, sign: str = "key",
                   secret: str | None = None) -> str:
        """A token signed by the provider's current key for ``alg`` (or key ``kid``); see the fixture."""
        spec: dict[str, Any] = {"alg": alg, "claims": claims or {}, "header": header or {}, "sign": sign}
        if kid is not None:
            spec["kid"] = kid
        if secret is not None:
            spec["secret"] = secret
        return str((await self._call("POST", "/admin/mint", spec))["token"])

    async def mint_raw(self, header_text: str, payload_text: str, kid: str, public_pem: bool = False) -> str:
        """``header_text`` and ``payload_text`` signed exactly as given by key ``kid`` (in its own algorithm,
        whatever the header says), or HS256 keyed with that key's public PEM."""
        spec: dict[str, Any] = {"sign": "raw", "kid": kid, "header_text": header_text, "payload_text": payload_text}
        if public_pem:
            spec["as"] = "public-pem"
        return str((await self._call("POST", "/admin/mint", spec))["token"])

    async def add_key(self, alg: str = "RS256", kid: str | None = None) -> str:
        return str((await self._call("POST", "/admin/keys", {"alg": alg, "kid": kid}))["kid"])

    async def remove_key(self, kid: str) -> None:
        await self._call("DELETE", f"/admin/keys/{kid}")

    async def set_down(self, down: bool) -> None:
        await self._call("POST", "/admin/down", {"down": down})

    async def stats(self) -> dict[str, Any]:
        """Fetch counts per endpoint (discovery, oauth_metadata, jwks, token) and the kids it publishes."""
        return dict(await self._call("GET", "/admin/stats"))

    async def set_lifetime(self, seconds: int) -> None:
        """Tokens issued from now on last ``seconds``."""
        await self._call("POST", "/admin/lifetime", {"seconds": seconds})

    async def token_requests(self) -> list[dict[str, Any]]:
        """Each token request so far: {"auth": "basic"|"post", "client_id", "form" (without the secret)}."""
        return list(await self._call("GET", "/admin/token-requests"))

    async def token(self, client_id: str, secret: str, **form: str) -> tuple[int, dict[str, Any]]:
        """The token endpoint's answer to a client_credentials request (client_secret_basic)."""
        async with aiohttp.ClientSession() as http, http.post(
                self.token_endpoint, data={"grant_type": "client_credentials", **form},
                headers={"Authorization": aiohttp.encode_basic_auth(client_id, secret)}) as response:
            return response.status, dict(await response.json())

    async def jwks(self) -> dict[str, Any]:
        """The published key set (counted as a fetch, like anyone's)."""
        async with aiohttp.ClientSession() as http, http.get(self.jwks_uri) as response:
            return dict(await response.json())

    def close(self) -> None:
        self.server.close()

    async def aclose(self) -> None:
        await self.server.aclose()
