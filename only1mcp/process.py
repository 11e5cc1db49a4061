"""Process-level helpers shared by the supervisor and the workers."""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import os
import signal
from typing import Any

__all__ = ["die_with_parent", "run_entry"]

_PR_SET_PDEATHSIG = 1


def run_entry(target: str, argument: Any) -> None:
    """Spawn target: import ``module:function`` in the child and call it, then exit with its return code.

    Lets the supervisor start a worker by name without importing the worker package itself.
    """
    module_name, _, function_name = target.partition(":")
    function = getattr(importlib.import_module(module_name), function_name)
    raise SystemExit(function(argument))


def die_with_parent(expected_parent: int, sig: int = signal.SIGTERM) -> bool:
    """Ask Linux to send ``sig`` when our parent exits; False if the parent is already gone."""
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    # The parent may have died before prctl took effect; then we were re-parented already.
    return os.getppid() == expected_parent
