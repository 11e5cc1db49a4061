"""The `rbac` section: what each role may list, call, read and administer."""

from __future__ import annotations

from .fields import _Strict

__all__ = ["RbacSettings"]


class RbacSettings(_Strict):
    """Role-based access to tools, prompts, resources and admin routes."""
