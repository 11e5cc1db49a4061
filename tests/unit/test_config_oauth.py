"""``backends[].oauth`` in config, and secrets in config never shown by `only1mcp validate`: a refused
value is quoted only when it is not a secret (a client secret, a header or environment value, the session
secret) and not a whole section (which may hold them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from only1mcp.cli import main as cli_main
from only1mcp.config.loader import load_settings
from only1mcp.config.models import HttpBackend

SECRETS = ("s3cret-Client-9f1e", "hdr-Secret-77ab", "env-Secret-31cd", "sess-Secret-short")
OAUTH = ("    oauth:\n      token_url: https://login.example.com/token\n      client_id: gateway\n"
         f"      client_secret: {SECRETS[0]}\n")

# (file name, content, expected "line:col", expected text in the message)
CASES = [
    ("both.yaml", "backends:\n  - name: api\n    url: https://api.example.com/mcp\n"
     f"    headers: {{authorization: Bearer {SECRETS[1]}}}\n" + OAUTH, "2:5",
     "backend 'api' sets both headers.authorization and oauth: the gateway sends its OAuth access token as the "
     "Authorization header; remove one of them"),
    ("plain_http.yaml", "backends:\n  - name: api\n    url: https://api.example.com/mcp\n"
     + OAUTH.replace("https://login.example.com", "http://login.example.com:8443"), "5:18",
     "token_url 'http://login.example.com:8443/token' must use https: the client secret and the tokens would "
     "cross the network in clear"),
    ("resource.yaml", "backends:\n  - name: api\n    url: https://api.example.com/mcp\n" + OAUTH
     + "      resource: https://api.example.com/mcp#part\n", "8:17",
     "resource 'https://api.example.com/mcp#part' must be an absolute URI without a fragment (RFC 8707)"),
    ("no_secret.yaml", "backends:\n  - name: api\n    url: https://api.example.com/mcp\n"
     "    oauth: {token_url: 'https://login.example.com/token', client_id: gateway}\n", "4:5",
     "missing required key 'client_secret'"),
    ("stdio_oauth.yaml", "backends:\n  - name: api\n    command: x\n" + OAUTH, "4:5", "unknown key 'oauth'"),
]


@pytest.mark.parametrize(("name", "content", "where", "message"), CASES, ids=[c[0] for c in CASES])
def test_oauth_config_errors(tmp_path: Path, capsys, name: str, content: str, where: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    assert cli_main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:{where}: error: " in err and message in err, err
    assert not any(secret in err for secret in SECRETS), err


def test_a_valid_oauth_block(tmp_path: Path, capsys) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("backends:\n  - name: api\n    url: https://api.example.com/mcp\n"
                    "    headers: {X-Tenant: blue}\n" + OAUTH + "      scope: mcp:tools\n"
                    "      resource: https://api.example.com/mcp\n")
    assert cli_main(["validate", str(path)]) == 0
    out = capsys.readouterr()
    assert "OK:" in out.out and SECRETS[0] not in out.out + out.err


def test_the_client_secret_may_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_CLIENT_SECRET", SECRETS[0])
    path = tmp_path / "env.yaml"
    path.write_text(OAUTH.replace(SECRETS[0], "${API_CLIENT_SECRET}").join(
        ["backends:\n  - name: api\n    url: https://api.example.com/mcp\n", ""]))
    settings, _ = load_settings(path)
    backend = settings.backends[0]
    assert isinstance(backend, HttpBackend) and backend.oauth is not None
    assert backend.oauth.client_secret == SECRETS[0]


def test_validate_never_quotes_a_secret(tmp_path: Path, capsys) -> None:
    """Every value here is refused; none of the secrets may appear in what validate prints."""
    path = tmp_path / "secrets.yaml"
    path.write_text(
        f"sessions: {{secret: {SECRETS[3]}}}\n"  # too short: refused, but not quoted
        "backends:\n"
        "  - name: local\n    command: x\n"
        f"    env: {{TOKEN: {SECRETS[2]}}}\n"
        "    per_worker: true\n    idle_shutdown: 5\n"  # a check of the whole backend: its input is not quoted
        "  - name: api\n    url: https://api.example.com/mcp\n"
        f"    headers: {{X-Key: {SECRETS[1]}, X-Number: 5}}\n"  # a header value of the wrong type: not quoted
        + OAUTH + "      scope: 7\n")  # not a secret: quoted
    assert cli_main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert "sessions.secret: string should have at least 32 characters" in err, err
    assert "idle_shutdown applies to shared children only" in err, err
    assert "backends.api.headers.X-Number: input should be a valid string\n" in err, err
    assert "backends.api.oauth.scope: input should be a valid string, got 7" in err, err
    assert not any(secret in err for secret in SECRETS), err
