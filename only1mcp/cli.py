"""``only1mcp``: start the gateway, validate, generate and import configs.

Light at import (workers spawned by ``only1mcp start`` re-import this module): commands import what they
need when they run.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib import resources
from typing import TYPE_CHECKING

from .cli_args import add_run_arguments

if TYPE_CHECKING:
    from .console.client import AdminClient

EXIT_OK, EXIT_CONFIG = 0, 1  # as in only1mcp.spec, without importing the bus here

__all__ = ["main"]

TEMPLATES = ("solo", "team", "enterprise")


def _start(args: argparse.Namespace) -> int:
    # Imported by name: the CLI is shared core and must not depend on the supervisor package at import.
    supervisor_main = importlib.import_module("only1mcp.supervisor.main")
    return int(supervisor_main.run(args))


def _validate(args: argparse.Namespace) -> int:
    from .config.document import ConfigErrors
    from .config.loader import load_settings
    try:
        settings, doc = load_settings(args.file)
    except ConfigErrors as exc:
        print(exc, file=sys.stderr)
        print(f"{args.file}: {len(exc.problems)} error(s)", file=sys.stderr)
        return EXIT_CONFIG
    names = ", ".join(f"{b.name} ({b.transport})" for b in settings.backends) or "none"
    print(f"OK: {doc.source}: {len(settings.backends)} backend(s): {names}")
    return EXIT_OK


def template_text(name: str) -> str:
    return resources.files("only1mcp.config").joinpath("templates", f"{name}.yaml").read_text(encoding="utf-8")


def _generate(args: argparse.Namespace) -> int:
    sys.stdout.write(template_text(args.template))
    return EXIT_OK


def _import(args: argparse.Namespace) -> int:
    from .config.document import ConfigErrors
    from .config.importer import import_client_config
    try:
        text, notes = import_client_config(args.file)
    except ConfigErrors as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _stdio(args: argparse.Namespace) -> int:
    import asyncio

    from .bridge import StdioBridge
    from .logs import setup_logging

    headers: dict[str, str] = {}
    for header in args.header:
        name, colon, value = header.partition(":")
        if not colon or not name.strip():
            print(f"only1mcp stdio: --header must look like 'Name: value', got {header!r}", file=sys.stderr)
            return EXIT_CONFIG
        headers[name.strip()] = value.strip()
    setup_logging("stdio-bridge", args.log_level)  # the log goes to stderr; stdout carries MCP only
    return asyncio.run(StdioBridge(args.url, headers).run())


def _admin_client(args: argparse.Namespace, command: str) -> AdminClient | None:
    from .console.client import AdminClient

    headers: dict[str, str] = {}
    for header in args.header:
        name, colon, value = header.partition(":")
        if not colon or not name.strip():
            print(f"only1mcp {command}: --header must look like 'Name: value', got {header!r}", file=sys.stderr)
            return None
        headers[name.strip()] = value.strip()
    return AdminClient(args.url, headers)


def _top(args: argparse.Namespace) -> int:
    from .console.commands import top

    client = _admin_client(args, "top")
    if client is None:
        return EXIT_CONFIG
    try:
        return top(client, args.interval)
    except KeyboardInterrupt:
        return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    from .console.commands import status

    client = _admin_client(args, "status")
    if client is None:
        return EXIT_CONFIG
    return status(client, args.json, args.interval)


def _add_console_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway's base URL")
    parser.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'",
                        help="an HTTP header for every request (repeatable), e.g. 'Authorization: Bearer …'")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds between readings (rates are measured over it; default 1)")


def _install(args: argparse.Namespace) -> int:
    from .config.install import InstallError, install

    try:
        message = install(args.client, args.url, args.name, args.path, args.dry_run)
    except InstallError as exc:
        print(f"only1mcp config install: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(message)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="only1mcp", description="One MCP endpoint in front of many MCP servers.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    start = commands.add_parser("start", help="run the gateway (same as only1mcp-supervisor)",
                                description="Run the gateway: a supervisor and N workers sharing one port.")
    add_run_arguments(start)
    start.set_defaults(func=_start)

    stdio = commands.add_parser("stdio", help="speak MCP on stdin/stdout and forward to a running gateway",
                                description="Speak MCP on stdin/stdout and forward to a running gateway, for "
                                "clients that only launch stdio servers.")
    stdio.add_argument("--url", default="http://127.0.0.1:8080/mcp", help="the gateway's /mcp endpoint")
    stdio.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'",
                       help="an HTTP header for every request (repeatable), e.g. 'Authorization: Bearer …'")
    stdio.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    stdio.set_defaults(func=_stdio)

    top = commands.add_parser("top", help="a live view of a running gateway (q quits)",
                              description="Workers, backends (state, breaker, req/s, p50/p99, errors) and reloads "
                              "of a running gateway, from its admin API, refreshed every second; q quits.")
    _add_console_arguments(top)
    top.set_defaults(func=_top)
    status = commands.add_parser("status", help="what `top` shows, printed once",
                                 description="What `only1mcp top` shows, printed once (rates over --interval).")
    _add_console_arguments(status)
    status.add_argument("--json", action="store_true", help="print JSON instead of tables")
    status.set_defaults(func=_status)

    validate = commands.add_parser("validate", help="check a config file; print OK or every error",
                                   description="Check a config file. Prints OK, or every error as "
                                   "file:line:col (exit 1).")
    validate.add_argument("file", help="config file (YAML, TOML or JSON)")
    validate.set_defaults(func=_validate)

    config = commands.add_parser("config", help="generate or import config files",
                                 description="Generate or import config files.")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    generate = config_commands.add_parser("generate", help="print a commented example config",
                                          description="Print a valid, commented config to start from.")
    generate.add_argument("--template", choices=TEMPLATES, default="solo", help="which example (default solo)")
    generate.set_defaults(func=_generate)
    convert = config_commands.add_parser("import", help="convert a client's mcpServers/servers JSON to YAML",
                                         description="Convert a Claude Desktop, Cursor, Claude Code "
                                         "(mcpServers) or VS Code (servers) JSON file to native YAML.")
    convert.add_argument("file", help="the client's MCP config (JSON)")
    convert.add_argument("--output", "-o", help="write here instead of standard output")
    convert.set_defaults(func=_import)
    installer = config_commands.add_parser(
        "install", help="add the gateway to a client's MCP config (backup first)",
        description="Add an entry that runs `only1mcp stdio --url URL` to a client's MCP config file. The file "
        "is backed up first; running it again changes nothing; --dry-run prints the change instead.")
    installer.add_argument("--client", required=True, choices=["claude-desktop", "claude-code", "cursor", "vscode"])
    installer.add_argument("--url", default="http://127.0.0.1:8080/mcp", help="the gateway's /mcp endpoint")
    installer.add_argument("--name", default="only1mcp", help="the entry's name in the client (default only1mcp)")
    installer.add_argument("--path", help="the client's config file, if not in the usual place")
    installer.add_argument("--dry-run", action="store_true", help="print the change as a diff; write nothing")
    installer.set_defaults(func=_install)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
