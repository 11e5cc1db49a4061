"""Every check a request passes before a door serves it, in one place.

Host and Origin (DNS rebinding, cross-site calls from browsers) for every route, admin and health
included; the body size limit; the protocol version header; the sealed session and its revocation. Each
refusal is an Answer with the HTTP status the transport spec names and a JSON-RPC error body whose message
says what to fix, logged once.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from only1mcp.audit.outcome import Outcome
from only1mcp.auth.authenticate import Authenticator, AuthRefused, KeyUnknown
from only1mcp.auth.challenge import www_authenticate
from only1mcp.auth.principal import Principal
from only1mcp.catalog.profiles import ProfileRefused, choose_profile
from only1mcp.config.models import ServerSettings
from only1mcp.http.bodies import BodyIncomplete, BodyTimeout, BodyTooLarge, read_body, send_and_close
from only1mcp.policy.permissions import Permissions
from only1mcp.protocol.codec import MAX_DEPTH, TooDeep, dumps
from only1mcp.protocol.constants import SESSION_HEADER, VERSION_HEADER
from only1mcp.protocol.jsonrpc import Code, answer_id, error_message
from only1mcp.protocol.versions import SUPPORTED
from only1mcp.sessions import UNKNOWN_SESSION, InvalidSession, SessionInfo

from .exchange import Answer, Exchange, media_type, web_response
from .gateway import Gateway

__all__ = ["DEFAULT_BODY_LIMIT", "JSON", "SESSION_HEADER", "TOO_DEEP", "VERSION_HEADER", "Guard", "refusal", "too_deep"]

log = logging.getLogger("only1mcp.worker")

JSON = {"Content-Type": "application/json"}
# Sessions as seen by their current caller, reused while the caller is the same remembered principal
_BOUND_KEPT = 8192
# How long a request with a just-rotated key id waits for the supervisor's refetch of the issuer's keys
_KEY_WAIT = 5.0
# before the first config arrives
DEFAULT_BODY_LIMIT: int = ServerSettings.model_fields["max_body_size"].default
DEFAULT_BODY_TIMEOUT: float = ServerSettings.model_fields["body_timeout"].default


# JSON nested past the gateway's limit (only1mcp/protocol/codec.py says why 128) is answered -32600, not
# -32700: the text is valid JSON (RFC 8259 lets a parser limit nesting but sets no limit itself) and it was
# parsed, so the message is one the gateway does not take rather than one it could not read; and the error
# then carries the request's id, which a client multiplexing requests on one stream (WebSocket, legacy
# SSE) needs to match it to the request. HTTP 400, as for every malformed request.
TOO_DEEP = (f"message nested deeper than {MAX_DEPTH} levels of arrays and objects, the gateway's limit; send "
            "flatter JSON (deep data can travel as a string)")


def refusal(status: int, code: int, message: str, request_id: Any = None) -> Answer:
    """A refused request: logged once here, answered with a JSON-RPC error that says what to fix."""
    log.info("refused %d: %s", status, message)
    return Answer(status, dumps(error_message(request_id, code, message)), JSON)


def too_deep(exc: TooDeep) -> Answer:
    """The refusal of a message nested past the gateway's limit: 400, -32600 with the message's id."""
    return refusal(400, Code.INVALID_REQUEST, TOO_DEEP, answer_id(exc.value))


def _prove(authenticator: Authenticator, exchange: Exchange) -> Principal:
    """The principal the request's credential headers prove (AuthRefused or KeyUnknown otherwise)."""
    return authenticator.identify(exchange.header("Authorization"), exchange.header("X-API-Key")
                                  if authenticator.reads_api_key_header else None)


class Guard:
    __slots__ = ("_bound", "_gateway")

    # ------------------------------------------------------------ who is asking

    @property
    def authenticating(self) -> bool:
        return self._gateway.protected is not None

    def identify(self, exchange: Exchange, request_id: Any = None, message: Any = None
                 ) -> Principal | Answer | KeyUnknown | None:
        """The principal the request's credential proves; the 401/403 refusal with its WWW-Authenticate
        challenge (audited, with ``message`` when the body was read); None while authentication is off.
        KeyUnknown for a JWT signed with a key id not (yet) published: ``after_refresh`` asks for the
        issuer's keys again and decides."""
        protected = self._gateway.protected
        if protected is None:
            return None
        try:
            return _prove(protected.authenticator, exchange)
        except AuthRefused as exc:
            return self.challenge(exc, exchange, request_id, message)
        except KeyUnknown as exc:
            return exc

    async def after_refresh(self, exchange: Exchange, unknown: KeyUnknown, request_id: Any = None,
                            message: Any = None) -> Principal | Answer | None:
        """A token whose key the issuer may have just added: the keys fetched again (one fetch for all
        workers, rate-limited by auth.jwt.min_refresh_interval), then the token verified once more."""
        await self._gateway.keys_for(unknown.kid, _KEY_WAIT)
        caller = self.identify(exchange, request_id, message)
        if isinstance(caller, KeyUnknown):
            return self.challenge(AuthRefused(401, caller.error, str(caller)), exchange, request_id, message)
        return caller

    async def authenticate(self, exchange: Exchange, request_id: Any = None, message: Any = None
                           ) -> Principal | Answer | None:
        """``identify``, waiting for a refresh of the issuer's keys when a token names one not yet known."""
        caller = self.identify(exchange, request_id, message)
        if isinstance(caller, KeyUnknown):
            return await self.after_refresh(exchange, caller, request_id, message)
        return caller

    def permissions(self, caller: Principal) -> Permissions:
        return self._gateway.rbac.permissions(caller)

    def proves(self, exchange: Exchange) -> bool:
        """Whether the request carries a valid credential (always, while authentication is off). For routes
        that answer everyone but tell more to the authenticated: nothing is logged for a miss."""
        protected = self._gateway.protected
        if protected is None:
            return True
        try:
            _prove(protected.authenticator, exchange)
        except (AuthRefused, KeyUnknown):
            return False
        return True

    def challenge(self, refused: AuthRefused, exchange: Exchange, request_id: Any = None,
                  message: Any = None) -> Answer:
        """401 or 403 with the challenge that names the Protected Resource Metadata, and a JSON-RPC body;
        its audit line written first (every refusal of a credential passes here)."""
        protected = self._gateway.protected
        assert protected is not None
        trail = self._gateway.audit
        if trail.enabled:
            trail.record(Outcome.UNAUTHENTICATED if refused.status == 401 else Outcome.DENIED,
                         message if isinstance(message, dict) else None, peer=exchange.peer(),
                         code=Code.UNAUTHORIZED)
        if self._gateway.request_metrics.on:
            self._gateway.request_metrics.refused(refused.error)
        description = refused.description if refused.error is not None else None
        header = www_authenticate(protected.metadata_url, refused.error, description, refused.scope)
        answer = refusal(refused.status, Code.UNAUTHORIZED, refused.description, request_id)
        answer.headers = {**answer.headers, "WWW-Authenticate": header}
        return answer

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._bound: dict[str, SessionInfo] = {}

    def refuse_post(self, exchange: Exchange, content_length: int | None, limit: int) -> Answer | None:
        """What the headers of a POST refuse: a foreign Host or Origin, a wrong Accept or Content-Type, a
        declared body over ``limit``. None for nearly every request, so it is written out flat."""
        problem = self._gateway.policy.check(exchange.header("Host"), exchange.header("Origin"))
        if problem is not None:
            return refusal(403, Code.INVALID_REQUEST, problem)
        accept = exchange.header("Accept") or ""
        if not ("*/*" in accept or ("application/json" in accept and "text/event-stream" in accept)):
            return refusal(406, Code.INVALID_REQUEST, "Accept must list both application/json and text/event-stream")
        content_type = media_type(exchange.header("Content-Type"))
        if content_type != "application/json":
            return refusal(415, Code.INVALID_REQUEST, f"Content-Type must be application/json, got "
                                                      f"'{content_type or 'none'}'")
        if content_length is not None and content_length > limit:
            return refusal(413, Code.INVALID_REQUEST, f"request body of {content_length} bytes is over the "
                                                      f"{limit}-byte limit (server.max_body_size)")
        return None

    def origin(self, host: str | None, origin: str | None) -> Answer | None:
        """403 for a Host this gateway does not serve or an Origin it does not allow."""
        problem = self._gateway.policy.check(host, origin)
        return None if problem is None else refusal(403, Code.INVALID_REQUEST, problem)

    def body_limit(self) -> int:
        settings = self._gateway.settings
        return settings.server.max_body_size if settings is not None else DEFAULT_BODY_LIMIT

    def body_timeout(self) -> float:
        settings = self._gateway.settings
        return settings.server.body_timeout if settings is not None else DEFAULT_BODY_TIMEOUT

    async def body(self, request: web.Request) -> bytes | web.StreamResponse:
        """A body aiohttp serves (chunked, or after a hand-over), read whole within the size limit and the
        body timeout; else the refusal, already made (a late body also closes its connection)."""
        limit, timeout = self.body_limit(), self.body_timeout()
        try:
            return await read_body(request, limit, timeout)
        except BodyTooLarge:
            return web_response(refusal(413, Code.INVALID_REQUEST, f"request body is over the {limit}-byte limit "
                                                                   "(server.max_body_size)"))
        except BodyIncomplete:
            return web_response(refusal(400, Code.INVALID_REQUEST, "the request body ended before its "
                                                                   "Content-Length"))
        except BodyTimeout:
            return await send_and_close(request, web_response(refusal(
                408, Code.INVALID_REQUEST, f"request body not complete within {timeout:g}s (server.body_timeout)")))

    def too_large(self, size: int | None, request_id: Any = None) -> Answer | None:
        limit = self.body_limit()
        if size is None or size <= limit:
            return None
        return refusal(413, Code.INVALID_REQUEST, f"request body of {size} bytes is over the {limit}-byte limit "
                                                  "(server.max_body_size)", request_id)

    @staticmethod
    def version(header: str | None, message: Any = None) -> Answer | None:
        """400 for a version header this gateway does not speak (with the id of ``message``, once read)."""
        if header is not None and header not in SUPPORTED:
            return refusal(400, Code.INVALID_REQUEST, f"unsupported {VERSION_HEADER} '{header}'; this gateway "
                                                      f"speaks {', '.join(SUPPORTED)}", answer_id(message))
        return None

    def profile(self, name: str | None, caller: Principal | None, request_id: Any = None) -> Answer | None:
        """The refusal of an endpoint's profile (``name``, None for the whole catalog): 404 when the config
        defines no such profile, 403 when the caller's roles pin other profiles; None when it may be used."""
        if name is not None and name not in self._gateway.profiles:
            return refusal(404, Code.INVALID_REQUEST, f"no profile '{name}' is configured on this gateway; check "
                           "the URL (a profile <name> is served at /mcp/<name>, /sse/<name> and /ws/<name>)",
                           request_id)
        if caller is None:
            return None
        try:
            choose_profile(name, self._gateway.rbac.permissions(caller).profiles)
        except ProfileRefused as exc:
            return refusal(403, exc.code, exc.message, request_id)
        return None

    def session(self, token: str | None, reopen: str = "initialize a new session",
                request_id: Any = None, caller: Principal | None = None) -> SessionInfo | Answer:
        """The session a sealed token names, or the refusal: 400 without one, 404 unknown, expired or ended
        (``reopen`` says how to get a new one), 503 before the gateway has its session keys. ``request_id``:
        the id the refusal carries (the request's, once its body is read). ``caller``: the principal of
        this request (authentication on): a session opened by another is answered as unknown, so a stolen
        session id is worth nothing without its owner's credential."""
        if not token:
            return refusal(400, Code.INVALID_REQUEST, f"missing {SESSION_HEADER} header; send the id returned by "
                                                      "initialize, or initialize first", request_id)
        sealer = self._gateway.sealer
        if sealer is None:
            return refusal(503, Code.INTERNAL_ERROR, "the gateway is starting; retry in a moment", request_id)
        try:
            session = sealer.open(token)
        except InvalidSession as exc:
            return refusal(404, Code.INVALID_REQUEST, f"{exc}; {reopen}", request_id)
        if self._gateway.session_gone(session):
            return refusal(404, Code.INVALID_REQUEST, f"session was terminated (DELETE); {reopen}", request_id)
        if caller is None:
            return session
        if session.principal != caller.key:
            return refusal(404, Code.INVALID_REQUEST, f"{UNKNOWN_SESSION}; {reopen}", request_id)
        bound = self._bound.get(session.sid)
        if bound is None or bound.caller is not caller:  # a caller is one object per remembered token
            bound = session.called_by(caller)
            self._bound[session.sid] = bound
            if len(self._bound) > _BOUND_KEPT:
                del self._bound[next(iter(self._bound))]
        return bound
