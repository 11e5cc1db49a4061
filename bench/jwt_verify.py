"""CPU of one uncached JWT verification per algorithm, and of building a key set from a JWKS document.

    python -m bench.jwt_verify [--rounds 3000]

Tokens and keys are made with joserfc (the test extra), verified with the gateway's own JwtVerifier and
KeySet: what a worker spends on a token its cache has not seen, and on each new key publication.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from only1mcp.auth.jwt import JwtVerifier, KeySet
from only1mcp.config.auth import JwtSettings

from .stats import percentile, save

ISSUER = "https://idp.bench.test"
RESOURCE = "https://gateway.bench.test/mcp"


def _keys() -> dict[str, RSAKey | ECKey]:
    return {"RS256": RSAKey.generate_key(2048, parameters={"kid": "rs", "alg": "RS256"}),
            "PS256": RSAKey.generate_key(2048, parameters={"kid": "ps", "alg": "PS256"}),
            "ES256": ECKey.generate_key("P-256", parameters={"kid": "es", "alg": "ES256"})}


def _timed(call: Any, rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3000)
    args = parser.parse_args()
    keys = _keys()
    document = {"keys": [key.as_dict(private=False) for key in keys.values()]}
    key_set = KeySet.from_jwks(document)
    verifier = JwtVerifier(JwtSettings(issuer=ISSUER), RESOURCE)
    now = time.time()
    claims = {"iss": ISSUER, "aud": RESOURCE, "sub": "bench", "exp": int(now) + 3600, "scope": "tools:read"}
    result: dict[str, Any] = {"rounds": args.rounds, "verify_us": {}}
    for alg, key in keys.items():
        token = jwt.encode({"alg": alg, "kid": key.kid}, claims, key, algorithms=[alg])
        samples = _timed(lambda token=token: verifier.verify(token, key_set, now), args.rounds)
        result["verify_us"][alg] = {"p50": round(percentile(samples, 50), 1), "p99": round(percentile(samples, 99), 1)}
    builds = _timed(lambda: KeySet.from_jwks(document), max(10, args.rounds // 30))
    result["keyset_build_us"] = {"keys": len(document["keys"]), "p50": round(percentile(builds, 50), 1)}
    path = save("jwt_verify", result)
    for alg, figures in result["verify_us"].items():
        print(f"{alg}: verify p50 {figures['p50']} us, p99 {figures['p99']} us")
    print(f"KeySet of {len(document['keys'])} keys: built in {result['keyset_build_us']['p50']} us; saved {path}")


if __name__ == "__main__":
    main()
