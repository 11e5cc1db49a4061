"""What a fresh interpreter has imported after running some code: for checks that an optional dependency
costs nothing (is not even imported) unless the config turns it on."""

from __future__ import annotations

import json
import subprocess
import sys

__all__ = ["loaded_after"]


def loaded_after(code: str, prefixes: tuple[str, ...]) -> list[str]:
    """The modules whose names start with one of ``prefixes`` that a new interpreter holds after ``code``."""
    probe = (f"{code}\nimport json, sys\n"
             f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({prefixes!r}))))\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])
