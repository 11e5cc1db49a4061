"""The bus between processes: typed messages (``messages``), one codec, the Clone pattern for state
(PUB deltas, ROUTER snapshots), PUSH/PULL reports and a relay PUB for messages addressed to workers."""

from .codec import BusProtocolError, Envelope, decode, encode
from .endpoints import Endpoints
from .messages import Kind, Role, Sender, Target
from .publisher import StatePublisher
from .replica import Replica, Revocations
from .reporter import Reporter, ReportSink
from .router import MessageRouter
from .state import Namespace, State

__all__ = [
    "BusProtocolError",
    "Endpoints",
    "Envelope",
    "Kind",
    "MessageRouter",
    "Namespace",
    "Replica",
    "ReportSink",
    "Reporter",
    "Revocations",
    "Role",
    "Sender",
    "State",
    "StatePublisher",
    "Target",
    "decode",
    "encode",
]
