"""What every settings model shares: strictness, the reload marks and the hint that config errors append.

Kept apart from ``models`` so each section's models can live in a module of their own.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["LIVE", "RESTART", "SENSITIVE", "Reload", "Sensitive", "loopback"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Reload(StrEnum):
    """What a config reload does with a setting: apply it to the running gateway, or keep the running value
    and report that it needs a restart. Every field of the top-level sections carries one (a test walks
    them); a backend is reloaded as a whole (a changed backend is restarted)."""

    LIVE = "live"
    RESTART = "restart"


LIVE = Reload.LIVE
RESTART = Reload.RESTART


class Sensitive:
    """Marks a setting never shown in logs or status (its value; its name may be)."""


SENSITIVE = Sensitive()


def _hint(text: str) -> dict[str, Any]:
    """Attach the 'what to write instead' text that config errors append."""
    return {"hint": text}


_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def loopback(host: str) -> bool:
    """Whether ``host`` (a name, an IP address, or an IPv6 address in brackets) is this machine only. Any
    other host name may resolve to anything, so it is not."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
