"""Reproduce lines round-trip for every command: parse argv, print the line, parse the line,
get the same arguments."""

from __future__ import annotations

import argparse
import importlib
import shlex

import pytest

from servelab.cli import COMMANDS, available
from servelab.reproduce import argv_for, build_parser, command_line, parse, run_metadata


def _value(action: argparse.Action) -> list[str]:
    """Words that give ``action`` a value other than its default."""
    n = action.nargs
    count = 2 if n in ("+", "*") else n if isinstance(n, int) else 1
    if action.choices is not None:
        pool = [str(c) for c in action.choices if c != action.default
                and not (isinstance(action.default, list) and c in action.default)]
        return (pool * count)[:count] or [str(next(iter(action.choices)))]
    t = action.type
    if t is int:
        return [str(7 + i) for i in range(count)]
    if t is float:
        return [str(2.5 + i) for i in range(count)]
    return [f"some value {i}" for i in range(count)]


def sample_argv(parser: argparse.ArgumentParser) -> list[str]:
    """Every positional and option of ``parser`` set to a non-default value."""
    positional: list[str] = []
    options: list[str] = []
    for a in parser._actions:
        if isinstance(a, argparse._HelpAction | argparse._VersionAction):
            continue
        if not a.option_strings:
            positional += _value(a)
        elif isinstance(a, argparse.BooleanOptionalAction):
            options.append(a.option_strings[-1] if a.default else a.option_strings[0])
        elif a.nargs == 0:
            options.append(a.option_strings[0])
        else:
            options += [a.option_strings[0], *_value(a)]
    return positional + options


def _module(name: str):
    return importlib.import_module(COMMANDS[name][0])


@pytest.mark.parametrize("name", sorted(available()))
def test_every_command_line_round_trips(name: str) -> None:
    add = _module(name).add_arguments
    parser = build_parser(name, add)
    for argv in (sample_argv(parser), [w for a in parser._actions if not a.option_strings
                                       and not isinstance(a, argparse._HelpAction)
                                       for w in _value(a)]):
        args = parser.parse_args(argv)
        line = command_line(name, add, args)
        words = shlex.split(line)
        assert words[: 1 + len(name.split())] == ["servelab", *name.split()]
        again = parse(name, add, words[1 + len(name.split()):])
        assert vars(again) == vars(args), line


def test_defaults_are_left_out_and_values_quoted() -> None:
    def add(p: argparse.ArgumentParser) -> None:
        p.add_argument("what", nargs="?", default="run")
        p.add_argument("--rate", type=float, default=1.0)
        p.add_argument("--name", default=None)
        p.add_argument("--fast", action="store_true")
        p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
        p.add_argument("--models", nargs="+", default=["a"])

    args = parse("x", add, ["--name", "a b", "--no-progress", "--models", "b", "c"])
    assert command_line("x", add, args) == (
        "servelab x run --name 'a b' --no-progress --models b c")
    assert argv_for(build_parser("x", add), parse("x", add, ["--name=-1"])) == ["run", "--name=-1"]


def test_run_metadata_has_one_shape() -> None:
    meta = run_metadata("servelab simulate")
    assert set(meta) == {"command", "started_at", "servelab", "machine"}
    assert {"cpu_model", "cores", "memory_bytes", "python", "torch", "loadavg"} <= set(meta["machine"])
