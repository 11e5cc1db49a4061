"""Config shapes, formats, precedence and substitution."""

from __future__ import annotations

from pathlib import Path

import pytest

from only1mcp.cli import TEMPLATES, template_text
from only1mcp.cli import main as cli_main
from only1mcp.config.document import ConfigErrors
from only1mcp.config.importer import import_client_config
from only1mcp.config.loader import load_settings
from only1mcp.config.models import HttpBackend, SseBackend, StdioBackend, WebSocketBackend
from only1mcp.config.reference import render


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_embedded_default_runs_the_demo_backend() -> None:
    settings, doc = load_settings(None, environ={})
    assert doc.source == "<built-in default>"
    (demo,) = settings.backends
    assert isinstance(demo, StdioBackend) and demo.args == ["-m", "only1mcp.demo_server"]
    assert settings.server.host == "127.0.0.1" and settings.server.port == 8080


def test_precedence_defaults_file_env_cli(tmp_path: Path) -> None:
    path = _write(tmp_path, "c.yaml", "server:\n  port: 9000\n  workers: 3\n  host: 127.0.0.2\n")
    settings, _ = load_settings(path, environ={})
    assert (settings.server.port, settings.server.workers, settings.server.drain_timeout) == (9000, 3, 30.0)
    env = {"ONLY1MCP_SERVER__PORT": "9100", "ONLY1MCP_SERVER__WORKERS": "5"}
    settings, _ = load_settings(path, environ=env)
    assert (settings.server.port, settings.server.workers, settings.server.host) == (9100, 5, "127.0.0.2")
    settings, _ = load_settings(path, {"server": {"port": 9200}}, environ=env)
    assert (settings.server.port, settings.server.workers) == (9200, 5)


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    path = _write(tmp_path, "c.yaml", "server:\n  port: 9000\n")
    with pytest.raises(ConfigErrors) as caught:
        load_settings(path, environ={"ONLY1MCP_SERVER__PORT": "http"})
    assert caught.value.problems[0].source == "environment variable ONLY1MCP_SERVER__PORT"


CLAUDE = """{
  "mcpServers": {
    "files": {"command": "npx", "args": ["-y", "pkg"], "env": {"TOKEN": "${env:MY_TOKEN}"}, "cwd": "/tmp"},
    "remote": {"type": "http", "url": "https://example.com/mcp", "headers": {"Authorization": "Bearer ${MY_TOKEN}"}},
    "legacy": {"url": "http://127.0.0.1:9000/sse"},
    "socket": {"url": "ws://127.0.0.1:9001/mcp", "prefix": ""},
    "off": {"command": "x", "disabled": true, "autoApprove": ["t"], "timeout": 12},
  }
}
"""


def test_claude_style_mcpservers_json(tmp_path: Path) -> None:
    settings, _ = load_settings(_write(tmp_path, "claude.json", CLAUDE), environ={"MY_TOKEN": "s3cret"})
    by_name = {b.name: b for b in settings.backends}
    assert isinstance(by_name["files"], StdioBackend) and by_name["files"].env == {"TOKEN": "s3cret"}
    assert str(by_name["files"].cwd) == "/tmp"
    assert isinstance(by_name["remote"], HttpBackend)
    assert by_name["remote"].headers == {"Authorization": "Bearer s3cret"}
    assert isinstance(by_name["legacy"], SseBackend)
    assert isinstance(by_name["socket"], WebSocketBackend) and by_name["socket"].effective_prefix == ""
    assert by_name["files"].effective_prefix == "files"
    assert not by_name["off"].enabled and by_name["off"].timeouts.call == 12


def test_vscode_servers_json_and_toml_native(tmp_path: Path) -> None:
    vscode = '{"servers": {"gh": {"type": "sse", "url": "https://x/sse"}, "m": {"type": "stdio", "command": "m"}}}'
    settings, _ = load_settings(_write(tmp_path, "mcp.json", vscode), environ={})
    assert [(b.name, b.transport) for b in settings.backends] == [("gh", "sse"), ("m", "stdio")]
    toml = ('[server]\nport = 0\n[proxy]\nseparator = "."\n[[backends]]\nname = "a"\ncommand = "x"\nprefix = "p"\n'
            '[mcpServers.b]\nurl = "https://b/mcp"\nprefix = ""\n')
    settings, _ = load_settings(_write(tmp_path, "c.toml", toml), environ={})
    assert settings.proxy.separator == "." and settings.server.port == 0
    assert [(b.name, b.effective_prefix) for b in settings.backends] == [("a", "p"), ("b", "")]


def test_substitution_default_and_escape(tmp_path: Path) -> None:
    text = "backends:\n  - name: a\n    command: ${CMD:-fallback}\n    args: ['$${LITERAL}', '${env:X}']\n"
    settings, _ = load_settings(_write(tmp_path, "c.yaml", text), environ={"X": "x-value"})
    assert settings.backends[0].command == "fallback"
    assert settings.backends[0].args == ["${LITERAL}", "x-value"]


def test_vscode_input_variables_are_explained(tmp_path: Path) -> None:
    text = '{"servers": {"a": {"command": "x", "env": {"K": "${input:api-key}"}}}}'
    with pytest.raises(ConfigErrors) as caught:
        load_settings(_write(tmp_path, "mcp.json", text), environ={})
    assert "VS Code prompts for ${input:...} values" in str(caught.value)


def test_remote_replicas(tmp_path: Path) -> None:
    text = ("backends:\n  - name: s\n    transport: http\n    replicas:\n      - http://a/mcp\n"
            "      - {url: 'http://b/mcp', weight: 3}\n")
    settings, _ = load_settings(_write(tmp_path, "c.yaml", text), environ={})
    backend = settings.backends[0]
    assert isinstance(backend, HttpBackend)
    assert backend.urls == ["http://a/mcp", "http://b/mcp"] and backend.replicas[1].weight == 3


@pytest.mark.parametrize("template", TEMPLATES)
def test_templates_are_valid(tmp_path: Path, template: str, capsys) -> None:
    assert cli_main(["config", "generate", "--template", template]) == 0
    text = capsys.readouterr().out
    assert text == template_text(template) and text.startswith("# Only1MCP")
    path = _write(tmp_path, f"{template}.yaml", text)
    assert cli_main(["validate", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"OK: {path}")


def test_import_keeps_variables_and_round_trips(tmp_path: Path) -> None:
    source = _write(tmp_path, "claude.json", '{"globalShortcut": "", ' + CLAUDE.strip()[1:])
    text, notes = import_client_config(str(source))
    assert "${env:MY_TOKEN}" in text and "s3cret" not in text
    assert notes == ["left out top-level key 'globalShortcut' (not an MCP server list)"]
    native = _write(tmp_path, "native.yaml", text)
    imported, _ = load_settings(native, environ={"MY_TOKEN": "s3cret"})
    original, _ = load_settings(_write(tmp_path, "orig.json", CLAUDE), environ={"MY_TOKEN": "s3cret"})
    assert imported.backends == original.backends


def test_import_rejects_a_file_without_servers(tmp_path: Path, capsys) -> None:
    path = _write(tmp_path, "x.json", '{"theme": "dark"}')
    assert cli_main(["config", "import", str(path)]) == 1
    assert "no 'mcpServers'" in capsys.readouterr().err


def test_configuration_reference_is_current() -> None:
    current = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    assert current == render(), "regenerate: python -m only1mcp.config.reference > docs/configuration.md"
