"""The fuzz tests' long runs: generated traffic on every door of a real gateway for N minutes.

Without ``--auth``: JSON-RPC bodies, with the gateway (2 workers, the demo stdio backend and an HTTP
fixture backend), doors, generators and oracle of tests/integration/test_fuzz.py, which runs 1,000
derandomized examples per door in CI. With ``--auth``: credentials and bodies on every door of the
authenticating gateway of tests/integration/test_auth_fuzz.py (2 workers, [jwt, api_key] with the real
OIDC provider, rbac), which runs 300 per door in CI.

Rounds of 200 examples go to each door in turn, each round with its own seed (``--seed`` plus the round
number), so a finding can be replayed; a finding is recorded with its shrunk example and the run goes on.
At the end: whether any worker restarted, whether normal (or valid-credential) calls still work, the
gateway's tracebacks, and with ``--auth`` the verdicts the generated credentials covered.

    python -m bench.fuzz [--auth] [--minutes 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, seed, settings

from tests.integration import test_auth_fuzz
from tests.integration.test_fuzz import DOORS, Doors, exchange, start, workers
from tests.support.credentials import credentials
from tests.support.fuzzing import bodies

from .stats import save

ROUND = 200  # examples per door and round
Round = Callable[[str, int], None]  # (door, seed): AssertionError on a finding


def _rounds(minutes: float, first_seed: int, doors: list[str], one: Round) -> tuple[int, list[dict[str, Any]]]:
    """Rounds on each door in turn until the time is up: (rounds run, findings)."""
    findings: list[dict[str, Any]] = []
    rounds = 0
    deadline = time.monotonic() + minutes * 60
    while time.monotonic() < deadline:
        name = doors[rounds % len(doors)]
        round_seed = first_seed + rounds
        rounds += 1
        try:
            one(name, round_seed)
        except AssertionError as exc:  # a finding: keep it (shrunk by hypothesis) and go on
            findings.append({"door": name, "seed": round_seed, "finding": str(exc)[:2000]})
            print(f"finding on {name} (seed {round_seed}): {str(exc)[:300]}", flush=True)
    return rounds, findings


def _settings(round_seed: int) -> Callable[[Any], Any]:
    def apply(test: Any) -> Any:
        return seed(round_seed)(settings(max_examples=ROUND, deadline=None, database=None,
                                         suppress_health_check=list(HealthCheck))(test))

    return apply


def run(minutes: float, first_seed: int) -> dict[str, Any]:
    backend, gateway = start(Path(tempfile.mkdtemp(prefix="only1mcp-fuzz-")))
    doors = Doors(gateway)
    examples: collections.Counter[str] = collections.Counter()

    def one(name: str, round_seed: int) -> None:
        @_settings(round_seed)
        @given(bodies())
        def check(body: bytes) -> None:
            examples[name] += 1
            found = exchange(doors, name, body)
            assert not found, f"{body[:300]!r}: {found}"

        check()

    try:
        doors.runner.run(doors.open())
        before = workers(gateway)
        rounds, findings = _rounds(minutes, first_seed, DOORS, one)
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


def run_auth(minutes: float, first_seed: int) -> dict[str, Any]:
    fuzz = test_auth_fuzz.AuthFuzz(Path(tempfile.mkdtemp(prefix="only1mcp-authfuzz-")))
    examples: collections.Counter[str] = collections.Counter()

    def one(name: str, round_seed: int) -> None:
        assert fuzz.realm is not None

        @_settings(round_seed)
        @given(credentials(fuzz.realm), bodies())
        def check(credential: Any, body: bytes) -> None:
            examples[name] += 1
            found = fuzz.exchange(name, credential, body)
            assert not found, f"{repr(credential)[:1500]} {body[:200]!r}: {found}"

        check()

    try:
        fuzz.open()
        rounds, findings = _rounds(minutes, first_seed, test_auth_fuzz.DOORS, one)
        after = workers(fuzz.gateway)
        valid_after = test_auth_fuzz.valid_credentials_problems(fuzz)
        leaked = len(test_auth_fuzz.leaked_credentials(fuzz))
    finally:
        fuzz.close()
    return {"minutes": minutes, "first_seed": first_seed, "rounds": rounds, "examples": sum(examples.values()),
            "examples_per_door": dict(examples), "verdicts": dict(fuzz.verdicts), "findings": findings,
            "workers_restarted": after != fuzz.before, "valid_credentials_after": valid_after,
            "credentials_in_log": leaked, "slowest_exchange_s": round(fuzz.slowest[0], 3),
            "tracebacks_in_log": _tracebacks(fuzz.gateway.lines)}


def _tracebacks(lines: list[str], kept: int = 5) -> dict[str, Any]:
    """How many tracebacks the gateway logged, and the first few with the line before each."""
    found = [i for i, line in enumerate(lines) if "Traceback (most recent call last)" in line]
    return {"count": len(found), "first": ["\n".join(lines[max(0, i - 1):i + 12]) for i in found[:kept]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--auth", action="store_true", help="credentials on every door (test_auth_fuzz.py)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0, help="seed of the first round (each round adds one)")
    args = parser.parse_args()
    result = (run_auth if args.auth else run)(args.minutes, args.seed)
    path = save("fuzz_auth" if args.auth else "fuzz", result)
    print(f"{result['examples']:,} examples in {result['rounds']} rounds over {args.minutes:g} min: "
          f"{len(result['findings'])} findings, workers restarted: {result['workers_restarted']} ({path})")
    if args.auth:
        print(f"verdicts: {result['verdicts']}; valid credentials after: {result['valid_credentials_after'] or 'ok'}; "
              f"credentials in the log: {result['credentials_in_log']}; slowest: {result['slowest_exchange_s']} s")
    else:
        print(f"normal call after: {result['normal_call_after']}")


if __name__ == "__main__":
    main()
