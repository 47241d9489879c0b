"""Every subpackage on disk is declared in pyproject.toml, so a regular (non-editable)
install ships it."""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]


def test_every_subpackage_is_declared():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = set(conf["packages"])
    mapping = conf["package-dir"]
    on_disk = set()
    for pkg, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            if any(part.startswith((".", "_")) or part == "tests" for part in rel.parts):
                continue
            on_disk.add(".".join([pkg, *rel.parts]))
    assert on_disk - declared == set(), "add these to [tool.setuptools] packages"
    assert declared - on_disk == set(), "declared packages with no folder"
