"""The `audit` section: one line per client request that reached policy."""

from __future__ import annotations

from .fields import _Strict

__all__ = ["AuditSettings"]


class AuditSettings(_Strict):
    """The audit trail."""
