"""What authentication and rbac add to a proxied tools/call, side by side in one run.

    python -m bench.auth_overhead [--seconds 8] [--rounds 3] [--instructions]

Three gateways in turn, each 1 worker in front of bench.fast_backend, with the same rbac policy where it
applies (8 roles, inheritance, allow and deny globs): authentication off; an API key (SHA-256 and a
constant-time comparison on every request); a JWT from the test OpenID Connect provider
(tests/fixtures/oidc_provider.py, RS256), verified once and then remembered per worker. Each is loaded
with wrk (c32, one session, the credential on every request) and its CPU per call read from /proc, the
three alternating for ``--rounds`` rounds (medians). ``--instructions`` also counts each worker's
instructions per call under callgrind (bench/instructions.py's method), which does not move with the
VM's speed. Target of issue 13: a cached JWT with rbac costs at most 5 us more per call than auth off.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from . import instructions
from .proxy_overhead import HERE, _check_call, _drain, _gateway_cpu, _session, _spawn, _wait_line, _wrk
from .stats import save

RESOURCE = "http://bench.example.test/mcp"
API_KEY = "bench-api-key-3b1f0c9e7d"
RBAC = """rbac:
  default_roles: [guest]
  roles:
    guest: {allow: ['prompts:*']}
    reader: {inherits: [guest], allow: ['tools:h_echo', 'tools:h_*_read', 'resources:file:///*']}
    writer: {inherits: [reader], allow: ['tools:h_*'], deny: ['tools:h_*_admin', 'tools:h_delete*']}
    auditor: {allow: ['tools:*_log', 'admin:status']}
    ops: {inherits: [writer, auditor], allow: ['admin:*']}
    robot: {allow: ['tools:h_echo'], deny: ['resources:*']}
    intern: {inherits: [reader], deny: ['tools:h_echo_*']}
    admin: {inherits: [ops], allow: ['tools:*', 'prompts:*', 'resources:*']}
"""


def _modes(issuer: str) -> dict[str, str]:
    digest = hashlib.sha256(API_KEY.encode()).hexdigest()
    return {
        "off": "",
        "api_key": f"auth:\n  mode: api_key\n  api_keys: [{{name: bench, sha256: {digest}, roles: [writer]}}]\n"
                   + RBAC,
        "jwt": f"auth:\n  mode: jwt\n  resource: {RESOURCE}\n  jwt: {{issuer: '{issuer}'}}\n" + RBAC,
    }


def _mint(issuer: str) -> str:
    origin = issuer[:issuer.find("/", len("http://"))] if issuer.count("/") > 2 else issuer
    spec = {"alg": "RS256", "claims": {"aud": RESOURCE, "roles": ["writer"], "exp": int(time.time()) + 7200}}
    request = urllib.request.Request(origin + "/admin/mint", json.dumps(spec).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.loads(response.read())["token"])


def _credential(mode: str, token: str) -> str:
    return {"off": "", "api_key": f"Bearer {API_KEY}", "jwt": f"Bearer {token}"}[mode]


def _cpu_run(backend_url: str, extra: str, seconds: float) -> dict[str, float]:
    """One gateway (1 worker pinned to core 0), warmed up, then one wrk run at c32: CPU per call."""
    folder = Path(tempfile.mkdtemp(prefix="only1mcp-auth-bench-"))
    config = folder / "bench.yaml"
    config.write_text("server: {port: 0, workers: 1, standby_workers: 0, log_level: warning}\n"
                      f"backends:\n  - name: h\n    url: {backend_url}\n" + extra)
    gateway = _spawn([sys.executable, "-m", "only1mcp.supervisor.main", "--config", str(config),
                      "--log-level", "info"], "0", stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    gateway.stdout = gateway.stderr
    try:
        url = _wait_line(gateway, r"ready url=(\S+)").group(1) + "/mcp"
        _drain(gateway)
        session = _session(url)
        _check_call(url, session, "h_echo")
        _wrk(url, session, "h_echo", 32, 2.0, "1")
        before = _gateway_cpu(gateway.pid)
        measured = _wrk(url, session, "h_echo", 32, seconds, "1")
        used = _gateway_cpu(gateway.pid) - before
        return {"cpu_us_per_call": round(used / max(1, measured["requests"]) * 1e6, 1), "rps": measured["rps"],
                "non_2xx": measured["non_2xx"]}
    finally:
        os.killpg(gateway.pid, signal.SIGTERM)
        gateway.wait(30)


def run(seconds: float, rounds: int, count_instructions: bool) -> dict[str, Any]:
    provider = _spawn([sys.executable, "-m", "tests.fixtures.oidc_provider", "--port", "0"], "1",
                      stdout=subprocess.PIPE, cwd=HERE.parent)
    backend = _spawn([sys.executable, "-m", "bench.fast_backend", "--port", "0"], "1", stdout=subprocess.PIPE,
                     cwd=HERE.parent)
    try:
        issuer = _wait_line(provider, r"listening on (\S+)").group(1)
        backend_url = _wait_line(backend, r"listening on (\S+)").group(1)
        token = _mint(issuer)
        modes = _modes(issuer)
        runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
        for round_ in range(rounds):
            order = list(modes) if round_ % 2 == 0 else list(reversed(modes))
            for mode in order:
                os.environ["MCP_AUTH"] = _credential(mode, token)
                runs[mode].append(_cpu_run(backend_url, modes[mode], seconds))
                print(f"round {round_ + 1} {mode}: {runs[mode][-1]}", file=sys.stderr)
        result: dict[str, Any] = {"seconds": seconds, "rounds": rounds, "modes": {}}
        for mode, measured in runs.items():
            result["modes"][mode] = {key: statistics.median(r[key] for r in measured) for key in measured[0]}
        if count_instructions:
            for mode in modes:
                os.environ["MCP_AUTH"] = _credential(mode, token)
                counted = instructions.run(seconds, 16, "http", modes[mode])
                result["modes"][mode]["instructions_per_call"] = counted["instructions_per_call"]
        off = result["modes"]["off"]
        for figures in result["modes"].values():
            figures["added_cpu_us"] = round(figures["cpu_us_per_call"] - off["cpu_us_per_call"], 1)
            if "instructions_per_call" in figures:
                figures["added_instructions"] = figures["instructions_per_call"] - off["instructions_per_call"]
        return result
    finally:
        os.environ.pop("MCP_AUTH", None)
        for process in (provider, backend):
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--instructions", action="store_true")
    args = parser.parse_args()
    result = run(args.seconds, args.rounds, args.instructions)
    path = save("auth_overhead", result)
    for mode, figures in result["modes"].items():
        extra = (f", {figures['instructions_per_call']:,} instructions (+{figures['added_instructions']:,})"
                 if "instructions_per_call" in figures else "")
        print(f"{mode:8} {figures['cpu_us_per_call']:6.1f} us/call (+{figures['added_cpu_us']:.1f}), "
              f"{figures['rps']:,.0f} req/s{extra}")
    print(f"({path})")
    refused = [mode for mode, figures in result["modes"].items() if figures["non_2xx"]]
    if refused:
        print(f"warning: {', '.join(refused)} got non-2xx answers; those figures are not of served calls",
              file=sys.stderr)


if __name__ == "__main__":
    main()
