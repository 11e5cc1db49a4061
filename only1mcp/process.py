"""Process-level helpers shared by the supervisor, the workers and the stdio host."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import importlib
import os
import resource
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any

from .exits import EXIT_BOOT

__all__ = ["child_setup", "die_with_parent", "run_entry", "tune_gc"]

_PR_SET_PDEATHSIG = 1
_GC_GEN0 = 20_000  # allocations between gen-0 collections while serving (Python's default: 700)


def run_entry(target: str, argument: Any) -> None:
    """Spawn target: import ``module:function`` in the child and call it, then exit with its return code.

    Lets the supervisor start a worker by name without importing the worker package itself. A failure to
    import it (a broken install, a missing dependency) is a boot error: exit code 3 tells the supervisor
    to stop rather than restart the process forever.
    """
    module_name, _, function_name = target.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except Exception:  # noqa: BLE001 -- this process can never serve: said once on stderr, exit 3
        print(f"only1mcp: cannot load {target}:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_BOOT) from None
    raise SystemExit(function(argument))


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """libc's prctl, looked up once (finding libc runs ldconfig: never do that between fork and exec)."""
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name, use_errno=True).prctl if name else None


def die_with_parent(expected_parent: int, sig: int = signal.SIGTERM) -> bool:
    """Ask Linux to send ``sig`` when our parent exits; False if the parent is already gone."""
    prctl = _prctl()
    if prctl is not None and prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    # The parent may have died before prctl took effect; then we were re-parented already.
    return os.getppid() == expected_parent


def child_setup(parent: int, limits: dict[int, int]) -> Callable[[], None]:
    """A ``preexec_fn`` for backend children: killed with their parent, and resource limits applied.

    It runs between fork and exec, so it only makes system calls prepared here in the parent.
    """
    prctl = _prctl()

    def setup() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)  # the host died before we could ask to die with it
        for kind, value in limits.items():
            resource.setrlimit(kind, (value, value))

    return setup


def tune_gc() -> None:
    """Collect cycles less often in a process that relays calls: a call allocates hundreds of short-lived
    objects, almost none in cycles, and the default gen-0 threshold ran a collection every few calls
    (measured: 94 -> 80 us of worker CPU per proxied call). What the process holds once booted lives as
    long as it does, so it is frozen out of every collection."""
    gc.freeze()
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, _GC_GEN0), gen1, gen2)

