"""The state bus: the Clone pattern over ZeroMQ (PUB deltas, ROUTER snapshots, PUSH/PULL observations)."""

from .endpoints import Endpoints
from .envelope import BusProtocolError, Envelope, Kind, decode, encode
from .publisher import StatePublisher
from .replica import Replica, State
from .reporter import ObservationSink, Reporter

__all__ = [
    "BusProtocolError",
    "Endpoints",
    "Envelope",
    "Kind",
    "ObservationSink",
    "Replica",
    "Reporter",
    "State",
    "StatePublisher",
    "decode",
    "encode",
]
