"""The fuzz test's long run: generated JSON-RPC traffic on every door of a real gateway for N minutes.

The same gateway (2 workers, the demo stdio backend and an HTTP fixture backend), doors, generators
and oracle as tests/integration/test_fuzz.py, which runs 1,000 derandomized examples per door in CI.
Here rounds of 200 examples go to each door in turn, each round with its own seed (``--seed`` plus the
round number), so a finding can be replayed; a finding is recorded with its shrunk example and the run
goes on. At the end: whether any worker restarted and whether a normal call still works.

    python -m bench.fuzz [--minutes 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, seed, settings

from tests.integration.test_fuzz import DOORS, Doors, exchange, start, workers
from tests.support.fuzzing import bodies

from .stats import save

ROUND = 200  # examples per door and round


def run(minutes: float, first_seed: int) -> dict[str, Any]:
    backend, gateway = start(Path(tempfile.mkdtemp(prefix="only1mcp-fuzz-")))
    doors = Doors(gateway)
    examples: collections.Counter[str] = collections.Counter()
    findings: list[dict[str, Any]] = []
    rounds = 0
    try:
        doors.runner.run(doors.open())
        before = workers(gateway)
        deadline = time.monotonic() + minutes * 60
        while time.monotonic() < deadline:
            name = DOORS[rounds % len(DOORS)]
            round_seed = first_seed + rounds
            rounds += 1
            try:
                _round(doors, name, round_seed, examples)
            except AssertionError as exc:  # a finding: keep it (shrunk by hypothesis) and go on
                findings.append({"door": name, "seed": round_seed, "finding": str(exc)[:2000]})
                print(f"finding on {name} (seed {round_seed}): {str(exc)[:300]}", flush=True)
        after = workers(gateway)
        call = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                           "params": {"name": "demo_echo", "arguments": {"text": "still here"}}}).encode()
        reply = doors.runner.run(doors.doors["fast"].send(call))
        still_works = [a.get("result", {}).get("content", [{}])[0].get("text") for a in reply.answers] == [
            "still here"]
    finally:
        doors.runner.run(doors.close())
        doors.runner.close()
        gateway.close()
        backend.close()
    return {"minutes": minutes, "first_seed": first_seed, "rounds": rounds, "examples": sum(examples.values()),
            "examples_per_door": dict(examples), "findings": findings, "workers_restarted": after != before,
            "normal_call_after": still_works, "tracebacks_in_log": _tracebacks(gateway.lines)}


def _tracebacks(lines: list[str], kept: int = 5) -> dict[str, Any]:
    """How many tracebacks the gateway logged, and the first few with the line before each."""
    found = [i for i, line in enumerate(lines) if "Traceback (most recent call last)" in line]
    return {"count": len(found), "first": ["\n".join(lines[max(0, i - 1):i + 12]) for i in found[:kept]]}


def _round(doors: Doors, name: str, round_seed: int, examples: collections.Counter[str]) -> None:
    """ROUND examples on one door; AssertionError (with hypothesis's shrunk example) on a finding."""

    @seed(round_seed)
    @settings(max_examples=ROUND, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(bodies())
    def check(body: bytes) -> None:
        examples[name] += 1
        found = exchange(doors, name, body)
        assert not found, f"{body[:300]!r}: {found}"

    check()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0, help="seed of the first round (each round adds one)")
    args = parser.parse_args()
    result = run(args.minutes, args.seed)
    path = save("fuzz", result)
    print(f"{result['examples']:,} examples in {result['rounds']} rounds over {args.minutes:g} min: "
          f"{len(result['findings'])} findings, workers restarted: {result['workers_restarted']}, "
          f"normal call after: {result['normal_call_after']} ({path})")


if __name__ == "__main__":
    main()
