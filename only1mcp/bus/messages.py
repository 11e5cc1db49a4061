"""Every kind of message that crosses a process boundary, with its typed payload.

Channels: the supervisor's state PUB (deltas, heartbeats), its ROUTER (requests with replies), the
report PUSH/PULL (workers and the stdio host to the supervisor), the relay PUB (messages for one worker,
or all), and the stdio host's links (a worker's or the supervisor's connection to one shared stdio
backend). ``SPECS`` says, for each kind, its channel, who sends it, and its payload class; the message
catalogue in docs/architecture.md is generated from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

from only1mcp.ratelimit.limits import Limit

from .state import StateEntry
from .wire import Payload, payload

__all__ = [
    "ALL_WORKERS",
    "RELAYED",
    "SPECS",
    "STANDBYS",
    "AdminAction",
    "AdminResult",
    "AdminVerb",
    "Adopt",
    "BackendChanged",
    "BackendRemoved",
    "BackendTokenRefused",
    "BootError",
    "CallOutcomes",
    "CancelCall",
    "Channel",
    "ChildState",
    "ChildStatus",
    "ClientResponse",
    "Delta",
    "Empty",
    "Heartbeat",
    "KeysWanted",
    "Kind",
    "LeaseAsk",
    "LeaseAsks",
    "LeaseEnd",
    "LeaseEnds",
    "LeaseGrant",
    "LeaseGrants",
    "LeaseUse",
    "LegacyPost",
    "LinkHello",
    "LinkPurpose",
    "LinkReceive",
    "LinkSend",
    "MessageSpec",
    "ModernEvent",
    "ModernRetry",
    "ModernRetryGone",
    "OutcomeBatch",
    "ProcessReport",
    "Replay",
    "ReplayRequest",
    "Request",
    "Role",
    "Sender",
    "SessionEvent",
    "SessionLogLevel",
    "SessionRevoke",
    "SessionSend",
    "Snapshot",
    "Status",
    "Target",
    "TaskOwned",
    "ToolsFound",
    "Unsubscribe",
]


class Kind(IntEnum):
    """What a frame carries. Values are the wire format: processes of one installation always agree."""

    # supervisor -> everyone (state PUB)
    DELTA = 1
    HEARTBEAT = 2
    # requests on the supervisor's ROUTER, and their replies
    SNAPSHOT_REQUEST = 3
    SNAPSHOT = 4
    STATUS_REQUEST = 5
    STATUS = 6
    REPLAY_REQUEST = 7
    REPLAY = 8
    ADMIN_ACTION = 50  # an operator's order through the admin API, answered when it has been applied
    ADMIN_RESULT = 51
    # reports to the supervisor (PUSH -> PULL)
    READY = 10
    PROCESS_HEARTBEAT = 11
    BOOT_ERROR = 12
    STATE_APPLIED = 13
    STANDBY_READY = 14
    CHILD_STATUS = 15
    BACKEND_REMOVED = 16
    BACKEND_CHANGED = 17
    CALL_OUTCOMES = 18
    SESSION_SEND = 19
    SESSION_REVOKE = 20
    KEYS_WANTED = 21
    LEASE_ASK = 22
    LEASE_RETURN = 23
    TOKEN_REFUSED = 25
    # addressed to one worker or all (relay PUB; a worker sends them as reports, the supervisor forwards)
    CLIENT_RESPONSE = 30
    CANCEL_CALL = 31
    LEGACY_POST = 32
    MODERN_RETRY = 33
    MODERN_RETRY_GONE = 34
    MODERN_EVENT = 35
    UNSUBSCRIBE = 36
    SESSION_EVENT = 37
    ADOPT = 38
    LEASE_GRANT = 39
    TOOLS_FOUND = 29  # relayed like 30-39, which are taken
    TASK_OWNED = 28
    LOG_LEVEL_SET = 27
    # a connection to one shared stdio backend in the stdio host
    LINK_HELLO = 40
    LINK_SEND = 41
    LINK_RECEIVE = 42


class Role(IntEnum):
    """What kind of process sent a frame."""

    SUPERVISOR = 1
    WORKER = 2
    STANDBY = 3  # a booted worker without a slot yet
    STDIO_HOST = 4


class Channel(StrEnum):
    STATE = "state PUB"
    REQUEST = "ROUTER request/reply"
    REPORT = "report PUSH/PULL"
    RELAY = "relay PUB"
    LINK = "stdio host link"


@payload
class Sender(Payload):
    """Who sent a frame: travels in every envelope."""

    role: Role
    slot: int  # a worker's slot; -1 for processes without one
    pid: int


ALL_WORKERS = -1  # Target.slot: every worker
STANDBYS = -2  # Target.slot: the standby workers


@payload
class Target(Payload):
    """Where a relayed message goes: one worker (slot and pid), every worker, or a standby by pid."""

    slot: int
    pid: int = 0  # 0: whichever process holds the slot

    @property
    def topic(self) -> bytes:
        if self.slot == ALL_WORKERS:
            return b"*"
        if self.slot == STANDBYS:
            return b"standby."
        return f"w{self.slot}.".encode()  # the dot keeps w1. from matching w10.


# ---------------------------------------------------------------- state


@payload
class Delta(Payload):
    """One state entry set to a new value (``value`` nil deletes it), numbered ``seq``."""

    seq: int
    entry: StateEntry


@payload
class Heartbeat(Payload):
    """The supervisor's current state seq: a replica that holds less asks for a snapshot."""

    seq: int


@payload
class Request(Payload):
    """A request with nothing but its id (snapshot, status)."""

    request_id: int


@payload
class Snapshot(Payload):
    """The whole state as of ``seq``."""

    request_id: int
    seq: int
    entries: tuple[StateEntry, ...]


@payload
class Status(Payload):
    """The supervisor's view for the admin API."""

    request_id: int
    status: dict[str, Any]


@payload
class ReplayRequest(Payload):
    """A reconnecting GET stream: the session's buffered events numbered above ``after``."""

    request_id: int
    sid: str
    after: int


@payload
class Replay(Payload):
    request_id: int
    numbers: tuple[int, ...]
    messages: tuple[bytes, ...]  # JSON, one per number


class AdminVerb(StrEnum):
    """What an operator may order through the admin API (each is also the rbac action ``admin:<verb>``)."""

    RELOAD = "reload"  # read the config again, as SIGHUP does
    DRAIN = "drain"  # route no new call to a backend
    UNDRAIN = "undrain"
    RESET = "reset"  # close a backend's breakers
    RESTART = "restart"  # restart a stdio backend's children


@payload
class AdminAction(Payload):
    """An admin action for the supervisor to apply. ``backend`` is "" for reload; ``replica`` -1 is every
    replica of the backend."""

    request_id: int
    verb: AdminVerb
    backend: str
    replica: int


@payload
class AdminResult(Payload):
    """How an admin action went: ``status`` is the HTTP status to answer with (200, 404 unknown backend,
    409 not applicable, 422 invalid config), ``seq`` the state seq that carries its effect (a worker
    answers once it holds it, so what the caller reads next already shows it), ``detail`` what to tell."""

    request_id: int
    status: int
    seq: int
    detail: dict[str, Any]


# ---------------------------------------------------------------- reports


@payload
class Empty(Payload):
    """Nothing beyond the sender (e.g. a standby saying it is ready)."""


@payload
class ProcessReport(Payload):
    """A worker's or the stdio host's state, sent with READY, PROCESS_HEARTBEAT and STATE_APPLIED."""

    seq: int  # the state seq it holds
    config_version: int
    requests: int  # requests served since start
    in_flight: int
    children: dict[str, Any]  # its own stdio children: "backend#replica" -> {pid, state, ...}
    waiting: int = 0  # requests it passed to clients (sampling, elicitation, roots) still waiting for an answer


@payload
class BootError(Payload):
    """A process failed before it could serve: the supervisor stops instead of restarting it forever."""

    error: str


class ChildState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    IDLE = "idle"  # an on-demand child that is not running now; it starts on the next call
    RESTARTING = "restarting"
    FAILED = "failed"


@payload
class ChildStatus(Payload):
    """The stdio host's report on one child of a shared stdio backend."""

    backend: str
    replica: int
    state: ChildState
    pid: int | None
    restarts: int
    last_error: str
    sessions: int = 0  # children serving one session each (isolation: per_session)


@payload
class BackendRemoved(Payload):
    """The stdio host stopped every child of a backend removed from the config."""

    backend: str


@payload
class BackendChanged(Payload):
    """A backend announced a list change: discover it again."""

    backend: str


@payload
class OutcomeBatch(Payload):
    backend: str
    replica: int
    outcomes: str  # one character per call, in order: "1" success, "0" failure
    error: str  # the last failure's message
    latency: float  # mean seconds per call


@payload
class CallOutcomes(Payload):
    """A worker's call outcomes since its last batch (successes every 100 ms, a failure at once)."""

    batches: tuple[OutcomeBatch, ...]


@payload
class SessionSend(Payload):
    """A message for a session's GET stream, through its mailbox (numbered, kept for replay)."""

    sid: str
    message: bytes  # JSON


@payload
class SessionRevoke(Payload):
    """A client ended its session (DELETE)."""

    sid: str
    expires: float  # wall-clock time its token would have expired anyway


@payload
class KeysWanted(Payload):
    """A token names a key the worker's key set lacks: the issuer may have rotated its keys."""

    kid: str  # "" for a token that names none
    request_id: str = ""  # the client request that brought the token ("" for none): named in the lines it causes


@payload
class BackendTokenRefused(Payload):
    """A backend answered 401 to the gateway's access token ``serial`` (0: the worker holds none): fetch
    a new one. The token itself never travels back."""

    backend: str
    serial: int
    request_id: str = ""  # the client request that met the refusal ("" for none): named in the lines it causes


@payload
class LeaseUse(Payload):
    """Tokens of a lease spent so far."""

    lease: int
    used: int


@payload
class LeaseAsk(Payload):
    """A worker wants tokens of one bucket (``want``: requests waiting for them, at least 1), and reports
    what it spent of the leases it holds on it, so the bucket refills behind them."""

    limit: Limit
    key: str  # the principal key, "<principal key> <tool>", or the backend's name
    want: int
    uses: tuple[LeaseUse, ...]


@payload
class LeaseAsks(Payload):
    """Every ask a worker made in one turn of its event loop."""

    asks: tuple[LeaseAsk, ...]


@payload
class LeaseEnd(Payload):
    """A worker is done with a lease, having spent ``used`` of its tokens; the rest go back to the bucket."""

    limit: Limit
    key: str
    lease: int
    used: int


@payload
class LeaseEnds(Payload):
    ends: tuple[LeaseEnd, ...]


# ---------------------------------------------------------------- relayed


@payload
class ClientResponse(Payload):
    """A client's answer to a request relayed to it, for the worker whose backend waits for it."""

    to: Target
    message: dict[str, Any]


@payload
class CancelCall(Payload):
    """A client cancelled a call that another worker may hold."""

    to: Target
    sid: str
    request_id: int | str


@payload
class LegacyPost(Payload):
    """A legacy HTTP+SSE POST received by another worker than the one holding the stream."""

    to: Target
    token: str
    message: dict[str, Any]


@payload
class ModernRetry(Payload):
    """A 2026-07-28 retry (with inputResponses) for the call another worker holds."""

    to: Target
    reply: Target  # the worker holding the client's POST
    token: str  # names that POST there
    message: dict[str, Any]


@payload
class ModernRetryGone(Payload):
    """The client of a relayed retry closed its response stream."""

    to: Target
    token: str


@payload
class ModernEvent(Payload):
    """An event of a relayed retry (a notification), or its final answer, for the worker holding the POST."""

    to: Target
    token: str
    message: dict[str, Any] | None
    final: dict[str, Any] | None
    status: int  # HTTP status of the final answer


@payload
class Unsubscribe(Payload):
    """A client unsubscribed from a resource another worker subscribed it to."""

    to: Target
    sid: str
    backend: str
    uri: str


@payload
class TaskOwned(Payload):
    """A task a session created (``task``: ``<replica>:<backend's id>``): every worker lists it in that
    session's tasks/list and routes its status notifications to it, wherever the next request lands."""

    to: Target
    backend: str
    task: str
    sid: str


@payload
class SessionLogLevel(Payload):
    """A session's ``logging/setLevel``: every worker passes that session only the log messages of this
    level and above, wherever its calls land (backends are shared, so they send what any client asked for)."""

    to: Target
    sid: str
    level: str


@payload
class ToolsFound(Payload):
    """Tools a lazy session's search found (``proxy.lazy.expose_found``): every worker adds them to that
    session's tools/list, wherever its next request lands."""

    to: Target
    sid: str
    names: tuple[str, ...]


@payload
class SessionEvent(Payload):
    """A numbered mailbox event, for the worker holding the session's GET stream."""

    to: Target
    sid: str
    number: int
    message: bytes  # JSON


@payload
class Adopt(Payload):
    """Orders a standby (``to.pid``) to take a dead worker's slot now."""

    to: Target
    slot: int
    replaces: int  # pid of the worker that died


@payload
class LeaseGrant(Payload):
    """Tokens of one bucket for the asking worker: ``tokens`` under ``lease`` (0 and 0: none now) usable from
    ``starts`` (later than now for a reservation) until ``expires``; ``retry_at``: when asking again makes
    sense. Times are on CLOCK_MONOTONIC, which every process of the gateway reads alike."""

    limit: Limit
    key: str
    lease: int
    tokens: int
    starts: float
    expires: float
    retry_at: float


@payload
class LeaseGrants(Payload):
    """The answers to one LeaseAsks, in its order."""

    to: Target
    grants: tuple[LeaseGrant, ...]


# ---------------------------------------------------------------- stdio host links


class LinkPurpose(IntEnum):
    CALLS = 1  # a worker's: clients' calls; it can answer a backend's requests to the client
    DISCOVERY = 2  # the supervisor's catalog discovery
    PROBE = 3  # the supervisor's health probes


@payload
class LinkHello(Payload):
    """First frame on a link: what it is for."""

    purpose: LinkPurpose


@payload
class LinkSend(Payload):
    """A JSON-RPC message for the child, and the client session it is for (None: the gateway's own)."""

    caller: str | None
    message: bytes  # JSON


@payload
class LinkReceive(Payload):
    """A JSON-RPC message from the child. ``related``: the id of the link's request it belongs to;
    ``caller``: the client session it belongs to; both None for a message that belongs to no client."""

    message: bytes  # JSON
    related: int | str | None
    caller: str | None


# ---------------------------------------------------------------- the table


@dataclass(frozen=True, slots=True)
class MessageSpec:
    channel: Channel
    direction: str
    payload: type[Payload]
    meaning: str


SPECS: dict[Kind, MessageSpec] = {
    Kind.DELTA: MessageSpec(Channel.STATE, "supervisor → all", Delta, "a state entry changed"),
    Kind.HEARTBEAT: MessageSpec(Channel.STATE, "supervisor → all", Heartbeat, "the current state seq"),
    Kind.SNAPSHOT_REQUEST: MessageSpec(Channel.REQUEST, "worker, stdio host → supervisor", Request,
                                       "ask for the whole state"),
    Kind.SNAPSHOT: MessageSpec(Channel.REQUEST, "supervisor → asker", Snapshot, "the whole state"),
    Kind.STATUS_REQUEST: MessageSpec(Channel.REQUEST, "worker → supervisor", Request, "ask for admin status"),
    Kind.STATUS: MessageSpec(Channel.REQUEST, "supervisor → asker", Status, "admin status"),
    Kind.REPLAY_REQUEST: MessageSpec(Channel.REQUEST, "worker → supervisor", ReplayRequest,
                                     "a session's buffered events after Last-Event-ID"),
    Kind.REPLAY: MessageSpec(Channel.REQUEST, "supervisor → asker", Replay, "those events"),
    Kind.ADMIN_ACTION: MessageSpec(Channel.REQUEST, "worker → supervisor", AdminAction,
                                   "an operator's action (reload, drain, undrain, reset, restart)"),
    Kind.ADMIN_RESULT: MessageSpec(Channel.REQUEST, "supervisor → asker", AdminResult,
                                   "its outcome, once applied and published"),
    Kind.READY: MessageSpec(Channel.REPORT, "worker, stdio host → supervisor", ProcessReport,
                            "booted and serving"),
    Kind.PROCESS_HEARTBEAT: MessageSpec(Channel.REPORT, "worker, standby, stdio host → supervisor", ProcessReport,
                                        "alive (sent from the event loop itself)"),
    Kind.BOOT_ERROR: MessageSpec(Channel.REPORT, "worker, standby, stdio host → supervisor", BootError,
                                 "could not boot: stop, do not restart"),
    Kind.STATE_APPLIED: MessageSpec(Channel.REPORT, "worker → supervisor", ProcessReport,
                                    "a new state version is in use"),
    Kind.STANDBY_READY: MessageSpec(Channel.REPORT, "standby → supervisor", Empty, "booted, can adopt a slot"),
    Kind.CHILD_STATUS: MessageSpec(Channel.REPORT, "stdio host → supervisor", ChildStatus,
                                   "a shared child's state changed"),
    Kind.BACKEND_REMOVED: MessageSpec(Channel.REPORT, "stdio host → supervisor", BackendRemoved,
                                      "a removed backend's children are stopped"),
    Kind.BACKEND_CHANGED: MessageSpec(Channel.REPORT, "worker → supervisor", BackendChanged,
                                      "a backend announced list_changed"),
    Kind.CALL_OUTCOMES: MessageSpec(Channel.REPORT, "worker → supervisor", CallOutcomes,
                                    "call outcomes for the breakers"),
    Kind.SESSION_SEND: MessageSpec(Channel.REPORT, "worker → supervisor", SessionSend,
                                   "a message for a session's GET stream"),
    Kind.SESSION_REVOKE: MessageSpec(Channel.REPORT, "worker → supervisor", SessionRevoke,
                                     "a session was ended (DELETE)"),
    Kind.KEYS_WANTED: MessageSpec(Channel.REPORT, "worker → supervisor", KeysWanted,
                                  "a token's kid is unknown: fetch the issuer's keys again (rate-limited)"),
    Kind.TOKEN_REFUSED: MessageSpec(Channel.REPORT, "worker → supervisor", BackendTokenRefused,
                                    "a backend refused the gateway's OAuth token: fetch a new one (rate-limited)"),
    Kind.LEASE_ASK: MessageSpec(Channel.REPORT, "worker → supervisor", LeaseAsks,
                                "tokens wanted from rate-limit buckets"),
    Kind.LEASE_RETURN: MessageSpec(Channel.REPORT, "worker → supervisor", LeaseEnds,
                                   "leases done with: their unused tokens go back"),
    Kind.CLIENT_RESPONSE: MessageSpec(Channel.RELAY, "worker → worker", ClientResponse,
                                      "a client's answer to a relayed request"),
    Kind.CANCEL_CALL: MessageSpec(Channel.RELAY, "worker → all", CancelCall, "a client cancelled a call"),
    Kind.LEGACY_POST: MessageSpec(Channel.RELAY, "worker → worker", LegacyPost,
                                  "a legacy SSE POST for the stream's worker"),
    Kind.MODERN_RETRY: MessageSpec(Channel.RELAY, "worker → worker", ModernRetry,
                                   "a 2026-07-28 retry for the worker holding its call"),
    Kind.MODERN_RETRY_GONE: MessageSpec(Channel.RELAY, "worker → worker", ModernRetryGone,
                                        "that retry's client went away"),
    Kind.MODERN_EVENT: MessageSpec(Channel.RELAY, "worker → worker", ModernEvent,
                                   "an event or the answer of a relayed retry"),
    Kind.UNSUBSCRIBE: MessageSpec(Channel.RELAY, "worker → all", Unsubscribe,
                                  "end a subscription another worker made"),
    Kind.SESSION_EVENT: MessageSpec(Channel.RELAY, "supervisor → all", SessionEvent,
                                    "a numbered mailbox event"),
    Kind.ADOPT: MessageSpec(Channel.RELAY, "supervisor → standbys", Adopt, "take this slot now"),
    Kind.LEASE_GRANT: MessageSpec(Channel.RELAY, "supervisor → worker", LeaseGrants,
                                  "leased tokens (or when to ask again)"),
    Kind.TASK_OWNED: MessageSpec(Channel.RELAY, "worker → all", TaskOwned,
                                 "a task and the session that created it, for its tasks/list"),
    Kind.TOOLS_FOUND: MessageSpec(Channel.RELAY, "worker → all", ToolsFound,
                                  "tools a lazy session found, for its tools/list (lazy.expose_found)"),
    Kind.LOG_LEVEL_SET: MessageSpec(Channel.RELAY, "worker → all", SessionLogLevel,
                                    "a session's logging/setLevel, for the log messages relayed to it"),
    Kind.LINK_HELLO: MessageSpec(Channel.LINK, "worker, supervisor → stdio host", LinkHello,
                                 "first frame: what the link is for"),
    Kind.LINK_SEND: MessageSpec(Channel.LINK, "worker, supervisor → stdio host", LinkSend,
                                "a message for the child"),
    Kind.LINK_RECEIVE: MessageSpec(Channel.LINK, "stdio host → worker, supervisor", LinkReceive,
                                   "a message from the child"),
}

RELAYED = frozenset(kind for kind, spec in SPECS.items() if spec.channel is Channel.RELAY)
