"""Every kind of bad config is refused with file:line:col and a hint, by `validate` and by the supervisor."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from only1mcp.cli import main as cli_main

# (file name, content, expected "line:col", expected text in the message)
CASES = [
    ("unknown.yaml", "server:\n  prot: 8080\n", "2:3", "unknown key 'prot'; did you mean 'port'?"),
    ("wrong_type.yaml", "server:\n  workers: many\n", "2:12", "valid integer"),
    ("missing_command.yaml", "backends:\n  - name: a\n    args: [x]\n", "2:5",
     "needs `command` (to run a local stdio server) or `url`"),
    ("missing_url.toml", '[[backends]]\nname = "a"\ntransport = "http"\n', "1:1", "has no url; write `url: http://"),
    ("duplicate.yaml", "backends:\n  - name: a\n    command: x\n  - name: a\n    command: y\n", "4:11",
     "duplicate backend name 'a' (first at line 2)"),
    ("bad_port.json", '{\n  "server": {"port": 70000}\n}\n', "2:22", "less than or equal to 65535"),
    ("invalid.yaml", "server:\n  port: 8080\n   host: x\n", "3:8", "invalid YAML"),
    ("invalid.toml", "[server]\nport = = 1\n", "2:8", "invalid TOML"),
    ("invalid.json", '{\n  "mcpServers": {\n    "a": {"command": "x"}\n    "b": {}\n  }\n}\n', "4:5",
     "expected ',' or '}'"),
    ("bad_transport.json", '{"mcpServers": {"a": {"url": "http://x/mcp", "type": "carrier-pigeon"}}}', "1:54",
     "unknown transport 'carrier-pigeon'; write one of stdio, http, sse, websocket"),
    ("bad_scheme.yaml", "backends:\n  - name: a\n    transport: websocket\n    url: http://x\n", "4:10",
     "must start with ws:// or wss://"),
    ("per_worker_idle.yaml", "backends:\n  - name: a\n    command: x\n    per_worker: true\n    idle_shutdown: 5\n",
     "2:5", "idle_shutdown applies to shared children only; with per_worker: true each worker keeps its child"),
    ("jwt_http_issuer.yaml", "auth:\n  jwt:\n    issuer: http://login.example.com\n", "3:13",
     "issuer 'http://login.example.com' must use https: keys fetched over plain http can be replaced on the way"),
    ("jwt_hmac.yaml", "auth:\n  jwt:\n    issuer: https://login.example.com\n    algorithms: [RS256, HS256]\n",
     "3:5", "algorithms lists HS256 but no shared_secret is set"),
    ("unset_env.yaml", "backends:\n  - name: a\n    command: ${NOT_SET_ANYWHERE_1234}\n", "3:14",
     "environment variable NOT_SET_ANYWHERE_1234 is not set"),
    ("rbac_pattern.yaml", "rbac:\n  roles:\n    reader:\n      allow: ['tool:x']\n", "4:15",
     "rbac.roles.reader.allow.#1: pattern 'tool:x' has an unknown kind 'tool'; did you mean 'tools:x'?"),
    ("rbac_inherits.yaml", "rbac:\n  roles:\n    reader: {}\n    editor:\n      inherits: [reader, writer]\n", "5:26",
     "role 'editor' inherits 'writer', which is not a role under rbac.roles (defined: editor, reader)"),
    ("rbac_default.toml", '[rbac]\ndefault_roles = ["reder"]\n[rbac.roles.reader]\nallow = ["tools:*"]\n', "2:17",
     "default_roles names 'reder', which is not a role under rbac.roles; did you mean 'reader'?"),
    ("rbac_cycle.json", '{\n  "rbac": {"roles": {\n    "a": {"inherits": ["b"]},\n    "b": {"inherits": ["c"]},\n'
     '    "c": {"inherits": ["a"]}\n  }}\n}\n', "5:24",
     "roles inherit each other in a cycle: a -> b -> c -> a; remove one of these inherits"),
    ("rbac_key.yaml", "rbac:\n  roles:\n    reader:\n      alow: []\n", "4:7",
     "unknown key 'alow'; did you mean 'allow'? (allowed here: allow, deny, inherits, profile)"),
]


@pytest.mark.parametrize(("name", "content", "where", "message"), CASES, ids=[c[0] for c in CASES])
def test_validate_reports_position_and_hint(tmp_path: Path, capsys, name, content, where, message) -> None:
    path = tmp_path / name
    path.write_text(content)
    assert cli_main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:{where}: error: " in err, err
    assert message in err, err


def test_unreadable_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "secret.yaml"
    path.write_text("server: {}\n")
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads anything: make the path unreadable another way
        path.chmod(0o644)
        path = tmp_path / "a-directory.yaml"
        path.mkdir()
    assert cli_main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:1:1: error: " in err and ("permission denied" in err or "is a directory" in err)


def test_missing_file(capsys) -> None:
    assert cli_main(["validate", "/nonexistent/only1mcp.yaml"]) == 1
    assert "/nonexistent/only1mcp.yaml:1:1: error: no such file" in capsys.readouterr().err


def test_all_errors_reported_at_once(tmp_path: Path, capsys) -> None:
    path = tmp_path / "many.yaml"
    path.write_text("server:\n  port: -1\n  wokers: 2\nbackends:\n  - name: a\n    comand: x\n")
    assert cli_main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count(": error: ") == 3 and "3 error(s)" in err


def test_every_rbac_problem_is_reported_at_its_own_entry(tmp_path: Path, capsys) -> None:
    path = tmp_path / "rbac.yaml"
    path.write_text("rbac:\n"
                    "  default_roles: [nobody]\n"
                    "  roles:\n"
                    "    editor:\n"
                    "      inherits: [admin, ghost]\n"
                    "    admin:\n"
                    "      inherits: [editor]\n"
                    "    loner:\n"
                    "      inherits: [loner]\n")
    assert cli_main(["validate", str(path)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"{path}:2:19: error: rbac.default_roles.#1: default_roles names 'nobody', which is not a role under "
        "rbac.roles (defined: admin, editor, loner)",
        f"{path}:5:25: error: rbac.roles.editor.inherits.#2: role 'editor' inherits 'ghost', which is not a role "
        "under rbac.roles (defined: admin, editor, loner)",
        f"{path}:7:18: error: rbac.roles.admin.inherits.#1: roles inherit each other in a cycle: editor -> admin "
        "-> editor; remove one of these inherits",
        f"{path}:9:18: error: rbac.roles.loner.inherits.#1: roles inherit each other in a cycle: loner -> loner; "
        "remove one of these inherits",
        f"{path}: 4 error(s)",
    ]


def test_an_rbac_problem_from_the_environment_names_its_variable(tmp_path: Path, capsys,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "rbac.yaml"
    path.write_text("rbac:\n  roles:\n    reader: {}\n")
    monkeypatch.setenv("ONLY1MCP_RBAC__DEFAULT_ROLES", '["raeder"]')
    assert cli_main(["validate", str(path)]) == 1
    assert ("environment variable ONLY1MCP_RBAC__DEFAULT_ROLES: error: rbac.default_roles.0: default_roles names "
            "'raeder', which is not a role under rbac.roles; did you mean 'reader'?") in capsys.readouterr().err


def test_supervisor_refuses_to_start_with_the_same_message(tmp_path: Path) -> None:
    path = tmp_path / "unknown.yaml"
    path.write_text("server:\n  prot: 8080\n")
    result = subprocess.run([sys.executable, "-m", "only1mcp.supervisor.main", "--config", str(path)],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 1
    assert f"{path}:2:3: error: server.prot: unknown key 'prot'; did you mean 'port'?" in result.stderr
    assert "refusing to start" in result.stderr and "Traceback" not in result.stderr


def test_bad_flag_is_one_clear_line(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "only1mcp.supervisor.main", "--port", "99999"],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 1
    assert "command line: error: server.port: input should be less than or equal to 65535" in result.stderr
    assert "Traceback" not in result.stderr
