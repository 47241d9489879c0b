"""The layering of DESIGN.md, enforced: nothing imports upward.

Layers, bottom up: core (no I/O) -> the run layer (``servelab/`` beside the CLI: results,
machine metadata, reproduce lines) and the shipped workloads -> ffi -> servers -> loadgen ->
calibrate, sim -> meta (the bandits trained and judged in simulation) -> gateway (the same
bandits live) -> analysis -> the CLI.  Every ``import servelab.<pkg>`` in the
source, lazy ones inside functions included, must name a package of the same layer or one below;
a new package gets its place in :data:`LAYERS`.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

LAYERS: dict[str, int] = {
    "core": 0,
    "servelab": 1,  # the run layer; servelab/cli.py is the top and checked apart
    "workloads": 1,
    "ffi": 2,
    "servers": 3,
    "loadgen": 4,
    "calibrate": 5,
    "sim": 5,
    "meta": 6,
    "gateway": 7,
    "analysis": 8,
}
CLI = 9
KNOWN_UPWARD: set[tuple[str, str]] = set()
"""Upward imports still to remove (none left: ffi's zoo wrappers moved to servers/kernel_models.py
and the GIL study to analysis/)."""


def _target(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "servelab" or len(parts) < 2:
        return None
    if parts[1] in LAYERS:
        return parts[1]
    run_layer = ROOT / "servelab" / parts[1]
    return "servelab" if run_layer.with_suffix(".py").is_file() or run_layer.is_dir() else parts[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


def _violations() -> list[str]:
    bad = []
    for pkg, rank in LAYERS.items():
        for path in sorted((ROOT / pkg).rglob("*.py")) if (ROOT / pkg).is_dir() else []:
            here = CLI if (pkg, path.name) == ("servelab", "cli.py") else rank
            for line, module in _imports(path):
                target = _target(module)
                if target is None or target == pkg or (pkg, target) in KNOWN_UPWARD:
                    continue
                if target not in LAYERS:
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}: "
                               f"give package {target!r} a layer in LAYERS")
                elif LAYERS[target] > here:
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return bad


def test_nothing_imports_upward() -> None:
    assert _violations() == []


def test_only_analysis_and_the_cli_import_analysis() -> None:
    """The rule the layers imply, said plainly (the servers once loaded the training module)."""
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for pkg in LAYERS if pkg != "analysis"
        for path in sorted((ROOT / pkg).rglob("*.py")) if path != ROOT / "servelab" / "cli.py"
        for line, module in _imports(path) if _target(module) == "analysis"
    ]
    assert found == []


def test_the_check_sees_lazy_imports(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from servelab.analysis.results import write_json\n")
    assert _imports(f) == [(2, "servelab.analysis.results")]
    assert _target("servelab.results") == "servelab" and _target("servelab.analysis.x") == "analysis"


def test_every_command_is_a_cmd_module() -> None:
    """One command convention: ``servelab <words>`` lives in ``<package>/cmd_<name>.py``, its
    name the command's words without the package's own (``bench sim`` -> sim/cmd_bench.py,
    ``meta train`` -> meta/cmd_train.py); the module parses, calls the library, prints."""
    from servelab.cli import COMMANDS

    odd = [m for m, _ in COMMANDS.values() if not m.rpartition(".")[2].startswith("cmd_")]
    assert odd == []
