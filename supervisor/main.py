"""``only1mcp-supervisor``: load the config, then run the Supervisor under uvloop.

This module stays light at import: with the ``spawn`` start method every worker re-imports the parent's
``__main__`` module, so heavy imports live inside ``run()`` (measured: 0.5 s of worker boot otherwise).
"""

from __future__ import annotations

import argparse
import os
import sys

from only1mcp.cli_args import add_run_arguments, overrides_from

__all__ = ["main", "run"]


def run(args: argparse.Namespace) -> int:
    """Start the gateway from parsed run flags; returns the exit code."""
    import uvloop

    from only1mcp.config.document import ConfigErrors
    from only1mcp.config.loader import load_settings
    from only1mcp.logs import setup_logging
    from only1mcp.spec import EXIT_CONFIG

    from .arbiter import Supervisor

    overrides = overrides_from(args)
    config = args.config or os.environ.get("ONLY1MCP_CONFIG") or None
    try:
        settings, doc = load_settings(config, overrides)
    except ConfigErrors as exc:
        print(exc, file=sys.stderr)
        print(f"only1mcp: refusing to start: {len(exc.problems)} config error(s)", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging("supervisor", settings.server.log_level, settings.logging.format)
    supervisor = Supervisor(settings, doc.source, config, overrides)
    return uvloop.run(supervisor.run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="only1mcp-supervisor",
        description="Run the Only1MCP gateway: a supervisor and N workers sharing one port.",
    )
    add_run_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
