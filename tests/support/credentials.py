"""Generated credentials for the gateway's doors, and what the gateway must decide for each.

Used by the bounded auth fuzz (tests/integration/test_auth_fuzz.py) and its long run (``python -m bench.fuzz
--auth``). A credential is header fields as raw bytes (any case, repeated, with bytes HTTP forbids, larger
than a request head may be), maybe holding a token that the test's OpenID Connect provider signs with a
real key: its header and claims generated and mutated (alg, kid of every type, times as strings or huge,
aud and iss of other types, roles and scopes of every JSON type, huge claims), then maybe damaged after
signing (truncated, padded, re-cut).

The oracle (``decide``) reads the bytes as HTTP (RFC 9110), bearer tokens (RFC 6750), JWS/JWT (RFC 7515,
7519) and the gateway's documented rules say, knowing nothing of the gateway's code: which principal the
credential proves, or that it is refused, or that it lacks the required scope.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

__all__ = ["FORBIDDEN", "TOO_LONG", "Credential", "Realm", "Token", "Verdict", "credentials", "damaged", "decide",
           "http_refusal", "verdict_of_token"]

# Bytes a header value may not hold (RFC 9110 5.5: field-vchar, SP, HTAB and obs-text only): the HTTP parser
# refuses the request head (400) before any door sees it.
FORBIDDEN = frozenset([*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F])
HEAD_LIMIT = 32_768  # server.max_header_size's default: a larger request head is refused with 431
TOO_LONG = 16 * 1024  # the longest token the gateway reads (docs/architecture.md, "Identity")
_ALLOWED_BYTES = bytes(b for b in range(256) if b not in FORBIDDEN)
_DELETE = object()


@dataclass(frozen=True)
class Realm:
    """What the gateway under test trusts: its issuer and audience, the scope it requires, the keys the
    provider publishes (kid -> the one algorithm each is bound to) and the API keys (as sent -> name, roles)."""

    issuer: str
    audience: str
    scope: str
    kids: Mapping[str, str]
    api_keys: Mapping[bytes, tuple[str, frozenset[str]]]
    algorithms: frozenset[str] = frozenset({"RS256", "ES256", "PS256"})
    leeway: float = 30.0


@dataclass(frozen=True)
class Verdict:
    """``outcome``: "served" (as ``principal`` with ``roles``), "refused" (401) or "scope" (403);
    ``presented``: whether any credential was sent; ``error``: the RFC 6750 error a refusal names (none
    when nothing was presented)."""

    outcome: str
    presented: bool = True
    principal: str | None = None
    roles: frozenset[str] = frozenset()
    error: str | None = None


REFUSED = Verdict("refused", error="invalid_token")
MALFORMED = Verdict("refused", error="invalid_request")  # an Authorization header that is not Bearer <token>
ABSENT = Verdict("refused", presented=False)
SCOPE = Verdict("scope", error="insufficient_scope")


@dataclass(frozen=True)
class Token:
    """A JWS in compact form: ``header`` and ``payload`` texts signed by the provider's key ``kid`` in its own
    algorithm (``how`` "key"), by HS256 keyed with that key's public PEM ("public-pem": the algorithm
    confusion attack) or by a key nobody published ("stranger"); then ``damage`` applied at ``cut``."""

    header: str
    payload: str
    kid: str
    how: str = "key"
    damage: str = "none"
    cut: int = 0


@dataclass(frozen=True)
class Credential:
    """Header fields sent as given, in order; with a token, it is sent in field ``slot`` (name, bytes before
    it, bytes after it), placed before ``fields[slot:]``."""

    fields: tuple[tuple[str, bytes], ...] = ()
    token: Token | None = None
    slot: tuple[int, str, bytes, bytes] | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)

    def render(self, compact: str | None) -> list[tuple[str, bytes]]:
        """The fields on the wire, ``compact`` (the token as sent) in its slot."""
        fields = list(self.fields)
        if self.slot is not None and compact is not None:
            index, name, before, after = self.slot
            fields.insert(min(index, len(fields)), (name, before + compact.encode() + after))
        return fields


# ---------------------------------------------------------------- the oracle

def http_refusal(head: bytes) -> set[int]:
    """The statuses the HTTP parser answers a request head with before any door sees it (empty: none)."""
    statuses: set[int] = set()
    lines = head.split(b"\r\n")[1:]
    if any(b in FORBIDDEN for line in lines for b in line):
        statuses.add(400)
    if len(head) > HEAD_LIMIT:
        statuses.add(431)
    return statuses


def _field(fields: list[tuple[str, bytes]], name: str) -> bytes | None:
    """One field's value as HTTP combines repeats (RFC 9110 5.3), each without its surrounding whitespace."""
    values = [value.strip(b" \t") for key, value in fields if key.lower() == name]
    return b", ".join(values) if values else None


def _bearer(authorization: bytes) -> bytes | None:
    """The token of ``Bearer <token>`` (scheme in any case, one or more spaces; RFC 7235 2.1), or None. The
    value is read without surrounding whitespace (a repeated field's empty value leaves ", " at the end)."""
    scheme, _, rest = authorization.strip(b" \t").partition(b" ")
    token = rest.lstrip(b" ")
    if scheme.lower() != b"bearer" or not token or any(c in b" \t" for c in token):
        return None
    return token


def _api_key(realm: Realm, value: bytes) -> Verdict:
    known = realm.api_keys.get(value)
    return REFUSED if known is None else Verdict("served", principal=f"api_key:{known[0]}", roles=known[1])


def decide(realm: Realm, fields: list[tuple[str, bytes]], tokens: Mapping[bytes, Verdict]) -> Verdict:
    """What the credential in ``fields`` proves; ``tokens``: the verdict of each generated token, as sent."""
    api_key = _field(fields, "x-api-key")
    if api_key is not None:  # a request naming an API key is decided by it (API keys are configured)
        return _api_key(realm, api_key)
    authorization = _field(fields, "authorization")
    if authorization is None:
        return ABSENT
    token = _bearer(authorization)
    if token is None:
        return MALFORMED
    if token in tokens:
        return tokens[token]
    return _api_key(realm, token)


def _json(text: str) -> Any:
    """``text`` as JSON (RFC 8259: no NaN or Infinity), or _DELETE when it is not JSON."""
    def constant(name: str) -> Any:
        raise ValueError(name)

    try:
        return json.loads(text, parse_constant=constant)
    except (ValueError, RecursionError):
        return _DELETE


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _names(value: Any) -> frozenset[str] | None:
    """A claim of names: absent, a space-separated string or a list of strings; None when it is neither."""
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return frozenset(value)
    return None


def verdict_of_token(realm: Realm, token: Token, sent: str, now: float) -> Verdict:
    """What the token ``sent`` (``token`` after its damage) proves at ``now``."""
    if token.damage != "none" or len(sent) > TOO_LONG:
        return REFUSED
    header = _json(token.header)
    if not isinstance(header, dict) or "crit" in header:  # RFC 7515 4.1.11: unknown extensions refuse
        return REFUSED
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str) or alg not in realm.algorithms:
        return REFUSED
    if kid is None and len(realm.kids) == 1:
        kid = next(iter(realm.kids))
    # Keys are bound to one algorithm each (the provider publishes their alg); the signature holds only
    # when the key the header names is the one that signed, in that algorithm.
    if not isinstance(kid, str) or realm.kids.get(kid) != alg or token.how != "key" or token.kid != kid:
        return REFUSED
    return _claims(realm, _json(token.payload), now)


def _claims(realm: Realm, claims: Any, now: float) -> Verdict:
    if not isinstance(claims, dict):
        return REFUSED
    expires, not_before = claims.get("exp"), claims.get("nbf")
    if not _number(expires) or now > expires + realm.leeway:
        return REFUSED
    if not_before is not None and (not _number(not_before) or now + realm.leeway < not_before):
        return REFUSED
    if claims.get("iss") != realm.issuer:
        return REFUSED
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences) \
            or realm.audience not in audiences:
        return REFUSED
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        return REFUSED
    access = claims.get("realm_access")
    roles = _names(access.get("roles") if isinstance(access, dict) else None)
    scope = claims.get("scope")
    scopes = _names(scope if scope is not None else claims.get("scp"))
    if roles is None or scopes is None:
        return REFUSED
    if realm.scope not in scopes:
        return SCOPE
    return Verdict("served", principal=f"jwt:{subject}", roles=roles)


# ---------------------------------------------------------------- damage after signing

def _flip(compact: str, cut: int) -> str:
    """A character inside a part changed (never a part's last one, whose low bits base64 may ignore): the
    decoded bytes change, so the signature no longer holds."""
    head, payload, _ = compact.split(".")
    position = cut % len(compact)
    if compact[position] == "." or position in (len(head) - 1, len(head) + len(payload), len(compact) - 1):
        position = len(head) + 1 if compact[1] == "." else 1
    return compact[:position] + ("A" if compact[position] != "A" else "B") + compact[position + 1:]


def damaged(compact: str, damage: str, cut: int) -> str:
    """The signed token ``compact`` as sent: unchanged ("none"), or broken in one way."""
    head, payload, signature = compact.split(".")
    if damage == "none":
        return compact
    if damage == "truncate":
        return compact[: len(head) + len(payload) + 2 + cut % max(1, len(signature))]
    if damage == "flip":
        return _flip(compact, cut)
    if damage == "standard-base64":  # the alphabet of RFC 4648 section 4, not base64url
        swapped = compact.replace("-", "+").replace("_", "/")
        return swapped if swapped != compact else compact + "+"
    return {"no-signature": f"{head}.{payload}.", "two-parts": f"{head}.{payload}",
            "padded": f"{compact}==", "extra-part": f"{compact}.{signature}",
            "jwe-shape": f"{compact}.{payload}.{signature}", "swapped": f"{payload}.{head}.{signature}"}[damage]


DAMAGES = ["truncate", "no-signature", "two-parts", "flip", "padded", "standard-base64", "extra-part",
           "jwe-shape", "swapped"]


# ---------------------------------------------------------------- generators

_json_scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False,
                 allow_infinity=False) | st.text(max_size=12))
_json_values = st.recursive(_json_scalars, lambda inner: st.lists(inner, max_size=3)
                            | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)
_PATHS = ["../../../../etc/passwd", "/dev/zero", "file:///etc/passwd", "http://127.0.0.1:1/jwks", "..\\..\\boot.ini",
          "%2e%2e%2f%2e%2e%2fetc", "kid\u0000nul", "\u202ekid", "rs256-1/../es256-2", "*", "' OR '1'='1"]


def _huge(sizes: list[int]) -> st.SearchStrategy[str]:
    return st.tuples(st.sampled_from(sizes), st.sampled_from("aZ0-~é")).map(lambda pair: pair[1] * pair[0])


def _header_values(realm: Realm) -> dict[str, st.SearchStrategy[Any]]:
    kids = sorted(realm.kids)
    return {
        "alg": st.sampled_from(["RS256", "ES256", "PS256", "RS384", "RS512", "ES384", "ES512", "PS512", "HS256",
                                "HS512", "none", "None", "NONE", "nOnE", "", "RS256 ", "rs256", "XX999", "ES256K",
                                "EdDSA"]) | _json_values,
        "kid": (st.sampled_from([*kids, "unknown-kid", "", " "]) | st.sampled_from(_PATHS) | _huge([100, 3000])
                | st.integers() | st.floats(allow_nan=False) | st.lists(st.sampled_from(kids), max_size=2)
                | st.dictionaries(st.text(max_size=3), st.sampled_from(kids), max_size=1) | st.booleans()
                | st.none() | st.text(max_size=20)),
        "typ": st.sampled_from(["JWT", "at+jwt", "JOSE"]) | _json_values,
        "crit": st.sampled_from([["exp"], [], "b64", ["b64"]]) | _json_values,
        "jku": st.sampled_from(["http://127.0.0.1:1/jwks", "https://attacker.example/jwks"]) | _json_values,
        "x5u": st.sampled_from(["http://127.0.0.1:1/x5u"]) | _json_values,
        "jwk": st.just({"kty": "oct", "k": "c2VjcmV0"}) | _json_values,
        "b64": st.booleans(),
        "cty": st.sampled_from(["JWT", "json"]) | _json_values,
        "extra": _huge([50, 2000]),
    }


def _claim_values(realm: Realm, now: int) -> dict[str, st.SearchStrategy[Any]]:
    valid_times = [now + 600, now + 600.5, 2**62, 2**64, 10**20, 1e300, float(now + 3600)]
    past_times = [now - 3600, 0, -1, -2**63, -1e300, now - 600.25]
    wrong_types = st.sampled_from([str(now + 600), "tomorrow", "", True, False, [now + 600], {"t": now + 600}])
    names = (st.sampled_from([realm.scope, f"{realm.scope} other", f"other  {realm.scope}", "other", "", "admin",
                              "admin reader", [realm.scope], [realm.scope, "other"], [], ["admin"], ["reader"],
                              ["admin", 1], [[realm.scope]], {"admin": True}, 1, 0.5, True])
             | _json_values | st.lists(st.text(max_size=8), max_size=3))
    return {
        "exp": st.sampled_from(valid_times + past_times) | wrong_types | _json_values,
        "nbf": st.sampled_from([now - 600, 0, -2**63, -1e300, now + 3600, 2**64, 1e300]) | wrong_types,
        "iat": st.sampled_from([now, now + 10**9, -1, 2**64, 1e300, "now", None, [1], {"a": 1}]) | _json_values,
        "iss": st.sampled_from([realm.issuer, realm.issuer + "/", realm.issuer.upper(), "https://evil.example",
                                [realm.issuer], {"iss": realm.issuer}, 1, None, ""]) | _json_values,
        "aud": st.sampled_from([realm.audience, [realm.audience], ["https://other.example", realm.audience],
                                [realm.audience, 1], [], "https://other.example", {"aud": realm.audience}, 1, None,
                                True]) | _json_values,
        "sub": st.sampled_from(["fuzz-user", "", "ünïcødé", " ", 1, None, ["a"], {"a": 1}]) | _huge([500, 5000])
        | st.text(min_size=1, max_size=10),
        "scope": names,
        "scp": names,
        "realm_access": st.fixed_dictionaries({"roles": names}) | _json_values,
        "x-huge": _huge([1000, 6000, 30_000]),
        "x-extra": _json_values,
    }


@st.composite
def _mutated(draw: st.DrawFn, start: dict[str, Any], table: dict[str, st.SearchStrategy[Any]],
             most: int) -> dict[str, Any]:
    """``start`` with up to ``most`` fields set to a value of their kind, or removed."""
    value = dict(start)
    for _ in range(draw(st.integers(0, most))):
        name = draw(st.sampled_from(sorted(table)))
        if draw(st.integers(0, 5)) == 0:
            value.pop(name, None)
        else:
            value[name] = draw(table[name])
    return value


_NOT_OBJECTS = ["", "null", "[]", "1", '"text"', "{", "not json", '{"exp": Infinity}', "\ufeff{}", "[{}]"]


# What a token's generation changes, against an otherwise valid token (so each refusal has one reason),
# except "chaos", which changes several things at once.
FOCUSES = ["valid", "header", "claims", "claims", "scope", "no-scope", "damage", "forged", "text", "chaos", "chaos"]


@st.composite
def tokens(draw: st.DrawFn, realm: Realm) -> Token:
    """A token signed by a real key (mostly), its header or claims mutated, maybe damaged afterwards."""
    now = int(time.time())
    focus = draw(st.sampled_from(FOCUSES))
    kid = draw(st.sampled_from(sorted(realm.kids)))
    header: dict[str, Any] = {"alg": realm.kids[kid], "kid": kid, "typ": "JWT"}
    claims: dict[str, Any] = {"iss": realm.issuer, "sub": "fuzz-user", "aud": realm.audience, "iat": now,
                              "exp": now + 600, "scope": realm.scope, "realm_access": {"roles": ["admin"]}}
    header_table, claim_table = _header_values(realm), _claim_values(realm, now)
    if focus in ("header", "chaos"):
        header = draw(_mutated(header, header_table, 1 if focus == "header" else 2))
    if focus in ("claims", "chaos"):
        claims = draw(_mutated(claims, claim_table, 1 if focus == "claims" else 3))
    if focus == "scope":  # roles and scopes of every JSON type, and the 403 of a scope that is missing
        claims = draw(_mutated(claims, {k: claim_table[k] for k in ("scope", "scp", "realm_access")}, 2))
    if focus == "no-scope":  # valid in every other way: 403
        claims["scope"] = draw(st.sampled_from(["other", "", [], ["admin"], f"{realm.scope}x", realm.scope.upper()]))
    texts = [json.dumps(header), json.dumps(claims)]
    if focus == "text" or (focus == "chaos" and not draw(st.integers(0, 4))):
        texts[draw(st.integers(0, 1))] = draw(st.sampled_from(_NOT_OBJECTS))
    how = draw(st.sampled_from(["public-pem", "stranger"])) if focus == "forged" else "key"
    if how == "public-pem":  # the attack: the header says HS256, the secret is the published key's PEM
        texts[0] = json.dumps({**header, "alg": "HS256"})
    elif how == "stranger" and draw(st.booleans()):  # and says where to find the key that signed it
        texts[0] = json.dumps({**header, **draw(st.sampled_from([
            {"jku": "http://127.0.0.1:1/jwks"}, {"jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}},
            {"x5u": "http://127.0.0.1:1/cert"}]))})
    damage = draw(st.sampled_from(DAMAGES)) if focus == "damage" or (
        focus == "chaos" and draw(st.booleans())) else "none"
    return Token(texts[0], texts[1], kid, how, damage, draw(st.integers(0, 10_000)))


_SCHEMES = [b"Bearer ", b"bearer ", b"BEARER ", b"Bearer    ", b"Bearer\t", b"Bearer:", b"Bearer", b"",
            b"Basic ", b"Token ", b"JWT ", b"DPoP ", b"Bearer Bearer ", b"Bearer \t"]


@st.composite
def _token_credential(draw: st.DrawFn, realm: Realm) -> Credential:
    token = draw(tokens(realm))
    name = draw(st.sampled_from(["Authorization"] * 12 + ["authorization", "AUTHORIZATION", "X-API-Key"]))
    before = b"" if name == "X-API-Key" else (b"Bearer " if draw(st.integers(0, 5)) else draw(st.sampled_from(
        _SCHEMES)))
    after = b"" if draw(st.integers(0, 9)) else draw(st.sampled_from([b" ", b"  \t", b" extra", b",", b", Bearer x"]))
    others = draw(_others(realm)) if not draw(st.integers(0, 3)) else ()
    return Credential(others, token, (draw(st.integers(0, len(others))), name, before, after))


def _allowed(data: bytes) -> bytes:
    return bytes(_ALLOWED_BYTES[b % len(_ALLOWED_BYTES)] for b in data)


def _garbage(realm: Realm) -> st.SearchStrategy[bytes]:
    """Header values that are not quite a credential."""
    keys = sorted(realm.api_keys)
    chunk = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=30)
    dotted = st.tuples(st.integers(0, 4), chunk).map(lambda pair: ".".join([pair[1]] * (pair[0] + 1)).encode())
    return st.one_of(
        st.just(b""),
        st.binary(max_size=40).map(_allowed),
        st.tuples(st.sampled_from(_SCHEMES), dotted).map(b"".join),
        st.tuples(st.sampled_from(_SCHEMES), st.binary(min_size=1, max_size=60).map(base64.b64encode)).map(b"".join),
        st.tuples(st.sampled_from(_SCHEMES), st.sampled_from(keys)).map(b"".join),
        st.tuples(st.sampled_from([b"Bearer", b"Bearer "]), st.integers(2, 200), st.sampled_from(keys)).map(
            lambda t: t[0] + b" " * t[1] + t[2]),
        st.tuples(st.sampled_from(keys), st.sampled_from([b"x", b" ", b"\t", b"\xe9", b"\xff", b".", b"=", b","]),
                  st.integers(0, 40)).map(lambda t: b"Bearer " + t[0][: t[2]] + t[1] + t[0][t[2]:]),
        st.sampled_from(keys).map(lambda key: b"Bearer " + key.upper()),
        st.sampled_from([b"Bearer caf\xe9", "Bearer ключ".encode(), b"Bearer \xff\xfe", b"\xe9\xe9",
                         b"Bearer \x80abc.def.ghi", b"Basic dXNlcjpwYXNz", b"Bearer =", b"Bearer ."]),
        st.tuples(st.sampled_from([b"Bearer ", b""]), st.sampled_from([9_000, 20_000, 40_000])).map(
            lambda t: t[0] + b"A" * t[1]),
        st.tuples(st.binary(min_size=1, max_size=8), st.sampled_from(sorted(FORBIDDEN))).map(
            lambda t: b"Bearer " + _allowed(t[0]) + bytes([t[1]]) + b"x"),
    )


@st.composite
def _others(draw: st.DrawFn, realm: Realm, least: int = 0) -> tuple[tuple[str, bytes], ...]:
    """Credential fields besides a token's (at least ``least``; none mostly), garbage or real keys."""
    fields: list[tuple[str, bytes]] = []
    for _ in range(max(least, draw(st.sampled_from([0] * 6 + [1, 1, 2, 3])))):
        name = draw(st.sampled_from(["Authorization", "authorization", "X-API-Key", "x-api-key", "X-API-KEY"]))
        if draw(st.booleans()):
            value = draw(st.sampled_from(sorted(realm.api_keys)))
            value = value if name.lower() == "x-api-key" else b"Bearer " + value
        else:
            value = draw(_garbage(realm))
        fields.append((name, value))
    return tuple(fields)


def credentials(realm: Realm) -> st.SearchStrategy[Credential]:
    """Any credential: signed and mutated tokens (mostly), garbage, real or mutated API keys, none, mixes."""
    return st.sampled_from(["token"] * 5 + ["fields"] * 3 + ["key", "none"]).flatmap(lambda kind: {
        "token": _token_credential(realm),
        "fields": _others(realm, 1).map(Credential),
        "key": st.sampled_from(sorted(realm.api_keys)).map(lambda key: Credential((("X-API-Key", key),))),
        "none": st.just(Credential()),
    }[kind])


Sign = Callable[[Token], Awaitable[str]]


async def realize(credential: Credential, sign: Sign, realm: Realm) -> tuple[list[tuple[str, bytes]], Verdict, str]:
    """The fields to send, the verdict they must get, and the token as sent ("" without one)."""
    sent = ""
    known: dict[bytes, Verdict] = {}
    if credential.token is not None:
        token = credential.token
        sent = damaged(await sign(token), token.damage, token.cut)
        known[sent.encode()] = verdict_of_token(realm, token, sent, time.time())
    fields = credential.render(sent or None)
    return fields, decide(realm, fields, known), sent
