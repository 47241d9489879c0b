"""The ``servelab`` command: one entry point, one subcommand per job.

Subcommands live next to the code they drive; this table maps each name to the module that
provides it (``add_arguments(parser)`` and ``run(args) -> int``).  Modules are imported only
when their command runs, so ``servelab --help`` stays fast.  Library code raises; only this
layer turns exceptions into a message and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("servelab.servers.zoo.commands", "list the model zoo with a measured latency each"),
    "workloads": ("servelab.workloads.commands", "list or show the shipped workloads"),
    "demo": ("servelab.analysis.demo", "the main job: an end-to-end run of the pipeline"),
}


def build_parser() -> argparse.ArgumentParser:
    from servelab import __version__

    parser = argparse.ArgumentParser(
        prog="servelab",
        description="Measure, simulate and learn how threads, processes and asyncio change "
        "the latency and throughput of ML inference serving.",
    )
    parser.add_argument("--version", action="version", version=f"servelab {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, helptext) in COMMANDS.items():
        sub.add_parser(name, help=helptext, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    # First pass: find the command; its own parser is built only once we know which.
    top, rest = parser.parse_known_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if top.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if top.command is None:
        parser.print_help()
        return 0
    module_name, helptext = COMMANDS[top.command]
    module = importlib.import_module(module_name)
    sub = argparse.ArgumentParser(prog=f"servelab {top.command}", description=helptext)
    module.add_arguments(sub)
    args = sub.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as exc:
        if top.verbose:
            raise
        print(f"servelab {top.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
