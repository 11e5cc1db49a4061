"""JSON encoding for the data path.

orjson, measured on the 2-core box for one proxied tools/call (parse the client's request, write the
backend's, parse the backend's answer, write the client's): 36 us with the standard library, 4.3 us with
orjson. That is 40% of the 80 us per-call budget, so the data path uses orjson.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["JSONDecodeError", "dumps", "loads"]

JSONDecodeError = orjson.JSONDecodeError


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)
