"""`only1mcp config install` against temporary copies of each client's config format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from only1mcp.cli import main as cli_main

URL = "http://127.0.0.1:9999/mcp"
FORMATS = {
    "claude-desktop": ('{"globalShortcut": "Ctrl+Space", "mcpServers": {"files": {"command": "npx", '
                       '"args": ["-y", "x"]}}}', "mcpServers"),
    "claude-code": ('{"numStartups": 3, "projects": {"/p": {}}, "mcpServers": {"mem": {"type": "stdio", '
                    '"command": "npx"}}}', "mcpServers"),
    "cursor": ('{"mcpServers": {"remote": {"url": "https://x.example/mcp"}}}', "mcpServers"),
    "vscode": ('{\n  // VS Code allows comments here\n  "servers": {"gh": {"type": "http", "url": '
               '"https://api.example/mcp"}},\n  "inputs": [],\n}\n', "servers"),
}


@pytest.mark.parametrize("client", sorted(FORMATS))
def test_install_keeps_existing_entries_backs_up_and_is_idempotent(client: str, tmp_path: Path, capsys) -> None:
    original, key = FORMATS[client]
    path = tmp_path / "client.json"
    path.write_text(original)
    args = ["config", "install", "--client", client, "--url", URL, "--path", str(path)]

    assert cli_main([*args, "--dry-run"]) == 0
    diff = capsys.readouterr().out
    assert diff.startswith(f"--- {path}") and '"only1mcp"' in diff and URL in diff
    assert path.read_text() == original  # a dry run writes nothing

    assert cli_main(args) == 0
    assert f"installed 'only1mcp' -> {URL}" in capsys.readouterr().out
    data = json.loads(path.read_text())
    entry = data[key]["only1mcp"]
    assert entry["args"] == ["stdio", "--url", URL] and entry["command"]
    assert (entry.get("type") == "stdio") == (client == "vscode")
    kept = [name for name in data[key] if name != "only1mcp"]
    assert kept and all(name in original for name in kept)  # the client's own entries are still there
    if client == "claude-desktop":
        assert data["globalShortcut"] == "Ctrl+Space"
    backups = list(tmp_path.glob("client.json.bak-*"))
    assert len(backups) == 1 and backups[0].read_text() == original

    assert cli_main(args) == 0
    assert "already installed" in capsys.readouterr().out
    assert len(list(tmp_path.glob("client.json.bak-*"))) == 1  # nothing changed, nothing backed up


def test_install_creates_a_missing_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "new" / "mcp.json"
    assert cli_main(["config", "install", "--client", "cursor", "--url", URL, "--path", str(path)]) == 0
    assert json.loads(path.read_text())["mcpServers"]["only1mcp"]["args"][-1] == URL


def test_install_refuses_a_broken_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"mcpServers": {')
    assert cli_main(["config", "install", "--client", "cursor", "--path", str(path)]) == 1
    assert "invalid JSON" in capsys.readouterr().err
    assert path.read_text() == '{"mcpServers": {'
