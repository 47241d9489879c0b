"""Reproduce lines and the run metadata block every summary carries.

A command's reproduce line is generated from its parser and the parsed arguments, never built
by hand: every positional is spelled out, every option whose value differs from its default is
given, so that parsing the line again yields the same arguments (tests/servelab/test_reproduce.py
checks this for every command of the CLI).

:func:`run_metadata` is the one metadata block of a summary: ``command`` (the reproduce line),
``started_at`` (UTC), ``servelab`` (the version) and ``machine`` (:func:`machine_metadata`).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import shlex
from collections.abc import Callable, Sequence
from typing import Any

from servelab import __version__
from servelab.machine import machine_metadata

AddArguments = Callable[[argparse.ArgumentParser], None]


def build_parser(command: str, add_arguments: AddArguments) -> argparse.ArgumentParser:
    """The parser of ``servelab <command>`` (what the CLI builds for it)."""
    parser = argparse.ArgumentParser(prog=f"servelab {command}")
    add_arguments(parser)
    return parser


def parse(command: str, add_arguments: AddArguments, argv: Sequence[str] = ()) -> argparse.Namespace:
    """Parse ``argv`` as the CLI would for ``command`` (defaults for everything not given)."""
    return build_parser(command, add_arguments).parse_args(list(argv))


def _words(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [str(value)]


def _option(action: argparse.Action, value: Any) -> list[str]:
    flag = max((s for s in action.option_strings if s.startswith("--")), key=len,
               default=action.option_strings[0])
    if isinstance(action, argparse.BooleanOptionalAction):
        yes = [s for s in action.option_strings if not s.startswith("--no-")]
        no = [s for s in action.option_strings if s.startswith("--no-")]
        return [yes[0] if value else no[0]]
    if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction
                  | argparse._StoreConstAction):
        return [flag] if value == action.const else []
    if isinstance(action, argparse._CountAction):
        return [flag] * int(value or 0)
    if isinstance(action, argparse._AppendAction):
        return [w for v in value or () for w in (flag, *_words(v))]
    words = _words(value)
    if action.nargs is None and len(words) == 1 and words[0].startswith("-"):
        return [f"{flag}={words[0]}"]
    return [flag, *words]


def argv_for(
    parser: argparse.ArgumentParser, args: argparse.Namespace, omit: Sequence[str] = ()
) -> list[str]:
    """The arguments that make ``parser`` give ``args`` back: positionals, then every option
    whose value differs from its default (attributes the parser does not know, and the
    destinations in ``omit``, are left out)."""
    positional: list[str] = []
    options: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._VersionAction):
            continue
        if action.dest in (argparse.SUPPRESS, *omit) or not hasattr(args, action.dest):
            continue
        value = getattr(args, action.dest)
        if not action.option_strings:
            positional += _words(value)
        elif value != action.default:
            options += _option(action, value)
    return positional + options


def command_line(
    command: str, add_arguments: AddArguments, args: argparse.Namespace, omit: Sequence[str] = ()
) -> str:
    """``servelab <command> ...``: the line that reproduces ``args``.  ``omit`` leaves out
    options that name this run rather than what it measures (``out``: a fresh folder)."""
    argv = argv_for(build_parser(command, add_arguments), args, omit)
    return shlex.join(["servelab", *command.split(), *argv])


def run_metadata(
    command: str, machine: dict[str, Any] | None = None, import_torch: bool = False
) -> dict[str, Any]:
    """The metadata block of a summary: the reproduce line, start time, version, machine
    (``machine``, when the caller has measured it already)."""
    return {
        "command": command,
        "started_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "servelab": __version__,
        "machine": machine if machine is not None else machine_metadata(import_torch),
    }
