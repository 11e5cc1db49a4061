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

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

from .proxy_overhead import HERE, _spawn, _wait_line
from .side_by_side import arguments, compare, report
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


def run(seconds: float, rounds: int, count_instructions: bool) -> dict[str, Any]:
    provider = _spawn([sys.executable, "-m", "tests.fixtures.oidc_provider", "--port", "0"], "1",
                      stdout=subprocess.PIPE, cwd=HERE.parent)
    backend = _spawn([sys.executable, "-m", "bench.fast_backend", "--port", "0"], "1", stdout=subprocess.PIPE,
                     cwd=HERE.parent)
    try:
        issuer = _wait_line(provider, r"listening on (\S+)").group(1)
        backend_url = _wait_line(backend, r"listening on (\S+)").group(1)
        token = _mint(issuer)

        def credential(mode: str) -> None:  # what the load generator sends in this mode
            os.environ["MCP_AUTH"] = _credential(mode, token)

        modes = compare(_modes(issuer), backend_url, seconds, rounds, count_instructions, credential)
        return {"seconds": seconds, "rounds": rounds, "modes": modes}
    finally:
        os.environ.pop("MCP_AUTH", None)
        for process in (provider, backend):
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(10)


def main() -> None:
    args = arguments(__doc__)
    result = run(args.seconds, args.rounds, args.instructions)
    path = save("auth_overhead", result)
    report(result["modes"])
    print(f"({path})")
    refused = [mode for mode, figures in result["modes"].items() if figures["non_2xx"]]
    if refused:
        print(f"warning: {', '.join(refused)} got non-2xx answers; those figures are not of served calls",
              file=sys.stderr)


if __name__ == "__main__":
    main()
