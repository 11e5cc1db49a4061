"""Generated and mutated credentials, with generated JSON-RPC bodies, on every door of a real gateway.

The gateway runs 2 workers with ``auth.mode: [jwt, api_key]`` against the real OpenID Connect provider
process (tests/fixtures/oidc_provider.py), a required scope and rbac. Credentials come from
tests/support/credentials.py: missing, empty, huge, non-ASCII, other schemes, bearer garbage with 0 to 4
dots, API keys and their near misses, tokens the provider signs with its real keys after their header
(alg, kid of every type) and claims (times, aud, iss, roles, scopes of every JSON type) were mutated, the
algorithm-confusion and stranger-key forgeries, truncated and re-cut tokens; X-API-Key beside or instead
of Authorization, fields repeated. Bodies come from tests/support/fuzzing.py.

The oracle: never a 5xx; a refused credential gets 401 (403 for a missing scope) with the
``WWW-Authenticate: Bearer resource_metadata="…"`` challenge naming the error it earned (none without a
credential, invalid_request for a header that is not ``Bearer <token>``, invalid_token, insufficient_scope)
and a JSON-RPC error -32004 carrying the request's id; a valid one is served as its principal
(and, on the session it opened, answered as tests/support/fuzzing.py expects); the health route tells
more than liveness only to a valid credential; no credential is ever echoed in an answer or the log; and
afterwards no worker restarted and valid credentials are served on every door. Bounded for CI
(derandomized, so a run repeats); the long run is ``python -m bench.fuzz --auth --minutes 10``.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import json
import re
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import HealthCheck, example, given, seed, settings

from tests.integration.test_fuzz import workers
from tests.support.credentials import Credential, Realm, Token, Verdict, credentials, http_refusal, realize
from tests.support.doors import CredentialDoor, LegacySseDoor, exact, reply_of
from tests.support.fuzzing import _answer_id, _key, bodies, problems, reference
from tests.support.gateway import Gateway
from tests.support.oidc import OidcProvider
from tests.support.rawhttp import ACCEPT, RawResponse, open_session

pytestmark = pytest.mark.timeout(300)

EXAMPLES = 300  # per door: about 45 s for all eleven on the 2-core box
RESOURCE = "https://mcp.fuzz.test/mcp"
METADATA = "https://mcp.fuzz.test/.well-known/oauth-protected-resource/mcp"
SCOPE = "mcp:use"
ADMIN_KEY = b"fuzz-admin-key-0123456789"
READER_KEY = "ключ-читателя-0123456789".encode()  # sent as its UTF-8 bytes
OWNER = "api_key:fuzz-admin"  # the principal that opened the sessions the doors use
FORGED_SESSION = "not-a-session-this-gateway-issued"
CONFIG = """
server: {{port: 0, workers: 2}}
auth:
  mode: [jwt, api_key]
  resource: {resource}
  required_scopes: ['{scope}']
  jwt: {{issuer: '{issuer}', roles_claim: realm_access.roles, min_refresh_interval: 1}}
  api_keys:
    - {{name: fuzz-admin, sha256: {admin}, roles: [admin]}}
    - {{name: fuzz-reader, sha256: {reader}, roles: [reader]}}
rbac:
  roles:
    admin: {{allow: ['tools:*', 'prompts:*', 'resources:*', 'admin:*']}}
    reader: {{allow: ['tools:demo_echo']}}
backends:
  - name: demo
    command: {python}
    args: ["-m", "only1mcp.demo_server"]
    timeouts: {{call: 1}}
"""
JSON_POST = (("Accept", ACCEPT), ("Content-Type", "application/json"))
WEBSOCKET = (("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
             ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Protocol", "mcp"))
DOORS = ["mcp", "mcp-chunked", "mcp-2026", "mcp-get", "mcp-delete", "sse", "sse-post", "sse-post-stray", "ws",
         "admin", "health"]
POSTS_WITH_ID = ("mcp", "mcp-chunked", "mcp-2026")  # a refusal there carries the request's id


# An initialize of the 2025-03-26 era
_INITIALIZE = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "authfuzz", "version": "1"}}}).encode()


class AuthFuzz:
    """The provider, the gateway and its doors, on one event loop that the synchronous hypothesis test drives."""

    def __init__(self, home: Path) -> None:
        self.runner = asyncio.Runner()
        self.provider = OidcProvider.start("--audience", RESOURCE)
        config = home / "only1mcp.yaml"
        config.write_text(CONFIG.format(resource=RESOURCE, scope=SCOPE, issuer=self.provider.issuer,
                                        admin=hashlib.sha256(ADMIN_KEY).hexdigest(),
                                        reader=hashlib.sha256(READER_KEY).hexdigest(), python=sys.executable))
        self.gateway = Gateway("--config", str(config), cwd=home)
        self.gateway.credentials = {"X-API-Key": ADMIN_KEY.decode()}
        self.stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # a key nobody published
        self.secrets: set[bytes] = set()  # every credential sent: none may come back, or reach the log
        self.verdicts: collections.Counter[str] = collections.Counter()  # what the generated traffic covered
        self.slowest = (0.0, "")  # seconds, and the credential of the slowest exchange
        self.doors: dict[str, CredentialDoor] = {}
        self.realm: Realm | None = None
        self._http: aiohttp.ClientSession | None = None
        self._legacy: LegacySseDoor | None = None
        self.before: list[tuple[int, int]] = []

    def open(self) -> None:
        self.gateway.wait_ready()
        self.runner.run(self._open())
        self.before = workers(self.gateway)

    async def _open(self) -> None:
        keys = {key["kid"]: key["alg"] for key in (await self.provider.jwks())["keys"]}
        self.realm = Realm(self.provider.issuer, RESOURCE, SCOPE, keys,
                           {ADMIN_KEY: ("fuzz-admin", frozenset({"admin"})),
                            READER_KEY: ("fuzz-reader", frozenset({"reader"}))})
        credential = {"X-API-Key": ADMIN_KEY.decode()}
        session = await open_session(self.gateway.url, _INITIALIZE, **credential)
        self._http = aiohttp.ClientSession()
        self._legacy = await LegacySseDoor(self._http, self.gateway.url, credential).open()
        with_session = (*JSON_POST, ("Mcp-Session-Id", session))
        self.doors = {
            "mcp": CredentialDoor("POST", "/mcp", with_session, body=True),
            "mcp-chunked": CredentialDoor("POST", "/mcp", with_session, body=True, chunked=True),
            "mcp-2026": CredentialDoor("POST", "/mcp", (*JSON_POST, ("MCP-Protocol-Version", "2026-07-28")),
                                       body=True),
            "mcp-get": CredentialDoor("GET", "/mcp", (("Accept", "text/event-stream"), ("Mcp-Session-Id", session))),
            "mcp-delete": CredentialDoor("DELETE", "/mcp", (("Mcp-Session-Id", FORGED_SESSION),)),
            "sse": CredentialDoor("GET", "/sse", (("Accept", "text/event-stream"),)),
            "sse-post": CredentialDoor("POST", self._legacy.endpoint, (("Content-Type", "application/json"),),
                                       body=True),
            "sse-post-stray": CredentialDoor("POST", "/messages", (("Content-Type", "application/json"),), body=True),
            "ws": CredentialDoor("GET", "/ws", WEBSOCKET),
            "admin": CredentialDoor("GET", "/api/v1/admin/status"),
            "health": CredentialDoor("GET", "/health"),
        }

    def close(self) -> None:
        try:
            self.runner.run(self._close())
        finally:
            self.runner.close()
            self.gateway.close()
            self.provider.close()

    async def _close(self) -> None:
        if self._legacy is not None:
            await self._legacy.close()
        if self._http is not None:
            await self._http.close()

    async def sign(self, token: Token) -> str:
        if token.how == "stranger":
            return _signed_by(self.stranger, token)
        return await self.provider.mint_raw(token.header, token.payload, token.kid, token.how == "public-pem")

    def exchange(self, name: str, credential: Credential, body: bytes) -> list[str]:
        """What is wrong with the answer ``name`` gives to ``credential`` (and ``body`` where it takes one)."""
        return self.runner.run(self._exchange(name, credential, body))

    async def _exchange(self, name: str, credential: Credential, body: bytes) -> list[str]:
        assert self.realm is not None
        fields, verdict, sent = await realize(credential, self.sign, self.realm)
        door = self.doors[name]
        body = body if door.body else b""
        secrets = {value.strip(b" \t") for _, value in fields} | ({sent.encode()} if sent else set())
        secrets = {s for s in secrets if len(s) >= 16}
        self.secrets.update(s for s in secrets if len(s) <= 4096)  # the huge ones are runs of one byte
        started = time.monotonic()
        try:
            head, response = await door.send(self.gateway.url, fields, body)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
            return [f"{name}: no answer ({exc!r}) to {fields!r}"]
        took = time.monotonic() - started
        if took > self.slowest[0]:
            self.slowest = (took, repr(fields)[:300])
        found = _echoed(secrets, response)
        statuses = http_refusal(head)
        self.verdicts["http-refused" if statuses else verdict.outcome if verdict.presented else "absent"] += 1
        if statuses:  # the HTTP parser's refusal, before any door
            return found + ([] if response.status in statuses else [f"HTTP {response.status}, expected {statuses}"])
        if response.status >= 500:
            found.append(f"HTTP {response.status}")
        if verdict.outcome == "served":
            return found + _served_problems(name, verdict, body, response)
        return found + _refused_problems(name, verdict, body, response)


def _signed_by(key: rsa.RSAPrivateKey, token: Token) -> str:
    """RS256 by a key no one published (the header may name a real kid, or embed the key itself)."""
    signing_input = f"{_b64(token.header.encode())}.{_b64(token.payload.encode())}".encode()
    return f"{signing_input.decode()}.{_b64(key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256()))}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()




def _echoed(secrets: set[bytes], response: RawResponse) -> list[str]:
    shown = "\n".join(f"{k}: {v}" for k, v in response.headers.items()).encode("latin-1", "replace") + response.body
    return [f"a credential came back in the answer: {s[:40]!r}…" for s in secrets if s in shown]


def _json_body(response: RawResponse) -> Any:
    try:
        return exact(response.body)
    except ValueError:
        return None


_PARAM = re.compile(r'\s*([A-Za-z_]+)=("(?:[^"\\]|\\.)*"|[^\s,"]*)\s*(,|$)')


def _challenge(header: str) -> dict[str, str] | None:
    """The auth-params of a ``Bearer`` challenge (RFC 7235 2.1; quoted strings unescaped), or None when the
    header is not one."""
    if not header.startswith("Bearer "):
        return None
    params: dict[str, str] = {}
    position = len("Bearer ")
    while position < len(header):
        found = _PARAM.match(header, position)
        if found is None or found.group(1) in params:
            return None
        value = found.group(2)
        params[found.group(1)] = re.sub(r"\\(.)", r"\1", value[1:-1]) if value.startswith('"') else value
        position = found.end()
    return params


def _request_id(name: str, body: bytes) -> Any:
    """The id a refusal of ``body`` on door ``name`` carries: the request's own where it is read first."""
    if name not in POSTS_WITH_ID:
        return None
    try:
        value = reference(body)
    except Exception:  # noqa: BLE001 - unreadable in any way: the refusal cannot name an id
        return None
    return _answer_id(value)


def _refused_problems(name: str, verdict: Verdict, body: bytes, response: RawResponse) -> list[str]:
    """401 (403 for the scope) with its challenge and a JSON-RPC error; on /health, liveness only."""
    answer = _json_body(response)
    if name == "health":
        return [] if response.status == 200 and answer == {"status": "ok"} else [
            f"/health told a refused credential more than liveness: {response.status} {answer}"]
    status = 403 if verdict.outcome == "scope" else 401
    found = [] if response.status == status else [f"HTTP {response.status} for a {verdict.outcome} credential, "
                                                   f"expected {status}: {response.body[:300]!r}"]
    found += _challenge_problems(verdict, response.headers.get("www-authenticate", ""))
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, dict) or error.get("code") != -32004:
        found.append(f"body {response.body[:200]!r} is not a JSON-RPC error -32004")
    elif _key(answer.get("id")) != _key(_request_id(name, body)):
        found.append(f"the refusal carries id {answer.get('id')!r}, expected {_request_id(name, body)!r}")
    return found


def _challenge_problems(verdict: Verdict, header: str) -> list[str]:
    """The challenge names the metadata, and the error (with its description) the credential earned: none
    when nothing was presented, invalid_request for a header that is not Bearer <token>, invalid_token for a
    credential that proves no one, insufficient_scope (with the scope) for a token without it."""
    params = _challenge(header)
    if params is None or params.get("resource_metadata") != METADATA:
        return [f"challenge {header!r} is not Bearer resource_metadata=\"{METADATA}\", …"]
    if params.get("error") != verdict.error:
        return [f"challenge {header!r}: expected error {verdict.error}"]
    if verdict.outcome == "scope" and params.get("scope") != SCOPE:
        return [f"challenge {header!r}: expected scope {SCOPE}"]
    if (verdict.error is None) != ("error_description" not in params):
        return [f"challenge {header!r}: a description goes with an error, and only with one"]
    return []

def _served_problems(name: str, verdict: Verdict, body: bytes, response: RawResponse) -> list[str]:
    """Served as its principal: what each door answers a valid credential."""
    if response.headers.get("www-authenticate") is not None or response.status == 401:
        return [f"a valid credential ({verdict.principal}) was refused: {response.status} {response.body[:300]!r}"]
    owner = verdict.principal == OWNER
    expected = {
        "health": 200, "ws": 101, "sse": 200, "mcp-delete": 404, "mcp-get": 200 if owner else 404,
        "sse-post-stray": 400,
        "admin": 200 if "admin" in verdict.roles else 403,
    }.get(name)
    if expected is not None:
        if response.status != expected:
            return [f"{name}: HTTP {response.status} for {verdict.principal}, expected {expected}: "
                    f"{response.body[:300]!r}"]
        if name == "health" and "pid" not in (_json_body(response) or {}):
            return [f"/health told a valid credential only liveness: {response.body!r}"]
        return []
    if name == "sse-post" and not owner:
        return [] if response.status == 404 else [f"sse-post: HTTP {response.status} for another principal"]
    if name in ("mcp", "mcp-chunked") and owner:
        return problems(body, reply_of(response), True, "items")
    return []


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthFuzz]:
    opened = AuthFuzz(tmp_path_factory.mktemp("authfuzz"))
    try:
        opened.open()
        yield opened
    finally:
        opened.close()


def _valid_token(realm: Realm, subject: str = "fuzz-user") -> Token:
    """A token of the provider's RS256 key (deterministic signature: the same text each time it is signed)."""
    kid = next(kid for kid, alg in realm.kids.items() if alg == "RS256")
    claims = {"iss": realm.issuer, "sub": subject, "aud": RESOURCE, "exp": int(time.time()) + 3600, "scope": SCOPE,
              "realm_access": {"roles": ["admin"]}}
    return Token(json.dumps({"alg": "RS256", "kid": kid}), json.dumps(claims), kid)


def _pinned(realm: Realm) -> list[tuple[Credential, bytes]]:
    """What this fuzz found, kept as examples: each got a wrong answer once."""
    bearer = (0, "Authorization", b"Bearer ", b"")
    return [
        # the fast path read header bytes as latin-1 and aiohttp as UTF-8: a UTF-8 key worked on one door only
        (Credential((("X-API-Key", READER_KEY),)), b"[]"),
        # the fast path kept the whitespace after a header value (llhttp strips only the one before it)
        (Credential((("X-API-Key", ADMIN_KEY + b" \t"),)), b"[]"),
        (Credential((("Authorization", b"Bearer " + ADMIN_KEY + b" "), ("Authorization", b""))), b"[]"),
        # a body that is not JSON was refused 400 before the missing credential was
        (Credential(), b'\x00{"jsonrpc":"2.0","id":0,"method":""}'),
        # two Authorization fields: aiohttp's doors took the first, the fast path joined them
        (Credential((("Authorization", b""),), _valid_token(realm), bearer), b"[]"),
        (Credential((("Authorization", b"Bearer " + ADMIN_KEY), ("Authorization", b"Bearer x"))), b"[]"),
        # a legacy POST without its session_id was refused 400 before the missing credential was
        (Credential(), b'{"jsonrpc":"2.0","id":1,"method":"ping"}'),
        # a remembered token outweighed the X-API-Key beside it (refused before it was remembered)
        (Credential((), _valid_token(realm, "cached"), bearer), b"[]"),
        (Credential((("X-API-Key", b"not-a-key-but-long-enough"),), _valid_token(realm, "cached"), bearer), b"[]"),
    ]


@pytest.mark.parametrize("name", DOORS)
def test_generated_credentials_get_exactly_their_verdict(fuzz: AuthFuzz, name: str) -> None:
    assert fuzz.realm is not None

    def check(credential: Credential, body: bytes) -> None:
        found = fuzz.exchange(name, credential, body)
        assert not found, f"{name}: {repr(credential)[:1500]} {body[:200]!r}: {found}"

    # A fixed seed per door (a run repeats; each door meets other examples)
    test = seed(zlib.crc32(name.encode()))(given(credentials(fuzz.realm), bodies())(settings(
        max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))(check)))
    for credential, body in reversed(_pinned(fuzz.realm)):  # the outermost example() runs first
        test = example(credential, body)(test)
    test()


def valid_credentials_problems(fuzz: AuthFuzz) -> list[str]:
    """An API key as X-API-Key, a non-ASCII one as a bearer token, and a fresh JWT on every door: what is
    wrong with their answers (nothing, once every door serves them)."""
    assert fuzz.realm is not None
    valid = [Credential((("X-API-Key", ADMIN_KEY),)), Credential((("Authorization", b"Bearer " + READER_KEY),)),
             Credential((), _valid_token(fuzz.realm, "after"), (0, "Authorization", b"Bearer ", b""))]
    ping = b'{"jsonrpc":"2.0","id":"after","method":"ping"}'
    return [f"{name}: {problem}" for name in DOORS for credential in valid
            for problem in fuzz.exchange(name, credential, ping)]


def leaked_credentials(fuzz: AuthFuzz) -> list[bytes]:
    """Credentials sent during the run that appear in the gateway's log."""
    log = fuzz.gateway.log
    return [s for s in fuzz.secrets if s.decode("latin-1") in log or s.decode("utf-8", "replace") in log]


def test_nothing_was_disturbed_and_valid_credentials_are_served(fuzz: AuthFuzz) -> None:
    """After the generated traffic: the same workers, never restarted; valid credentials served on every door;
    no traceback, and no credential, in the log."""
    assert workers(fuzz.gateway) == fuzz.before
    assert not valid_credentials_problems(fuzz)
    assert "Traceback (most recent call last)" not in fuzz.gateway.log, fuzz.gateway.log
    leaked = leaked_credentials(fuzz)
    assert not leaked, f"credentials in the log: {[s[:40] for s in leaked]}"
