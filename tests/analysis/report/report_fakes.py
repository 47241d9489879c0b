"""Fake report sections for the framework's tests: real (tiny) PNGs, small frames, no runs."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import pandas as pd

from servelab.analysis.report.section import Context, Figure, Section, Table
from servelab.analysis.report.sections import SectionSpec


def tiny_png(path: Path, width: int = 6, height: int = 4, rgb: tuple[int, int, int] = (40, 90, 200)
             ) -> Path:
    """A valid RGB PNG of one colour, written without any imaging library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    raw = b"".join(b"\0" + bytes(rgb) * width for _ in range(height))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0,
                                                                0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return path


def fake_spec(key: str, order: int, figures: int = 2, fail: bool = False,
              calls: list[str] | None = None) -> SectionSpec:
    def build(ctx: Context) -> Section:
        if calls is not None:
            calls.append(key)
        ctx.log(f"  {key}: working")
        if fail:
            raise RuntimeError(f"{key} broke on purpose")
        figs = []
        for i in range(figures):
            name = f"{key}-fig{i}"
            png = tiny_png(ctx.figure_path(name), rgb=(10 * order, 20 * i, 200))
            figs.append(Figure(name, png, pd.DataFrame({"x": [1, 2, 3], "y": [0.5, i, 2.0],
                                                        "label": ["a", "b", "c"]}),
                               claim=f"{key} figure {i}: y rises 4x", command=f"servelab {key} --i {i}",
                               fidelity="sim vs live: median |error| 12% over 3 points" if i else None,
                               spread="min-max over 3 repeats" if i else None))
        tab = Table(f"{key}-table", pd.DataFrame({"config": ["a", "b"], "value": [1.0, 2.5],
                                                 "mixed": [{"k": 1}, "text"]}),
                    caption=f"{key}'s numbers", command=f"servelab {key}")
        return Section(key, f"Question {key}?", f"{key}: the answer is 42 <&>.", figs, [tab],
                       notes=[f"{key} ran on a fake machine"])

    return SectionSpec(key=key, title=f"Question {key}?", order=order, build=build)


MACHINE: dict[str, Any] = {"cpu_model": "Fake CPU @ 1 GHz", "cores": 2, "logical_cpus": 2,
                           "memory_bytes": 8 * 2**30, "loadavg": [0.5, 0.4, 0.3], "os": "Linux",
                           "kernel": "6.0", "python": "3.11", "torch": "2.x", "hostname": "vm"}


def make_ctx(out: Path, lines: list[str] | None = None, **kw: Any) -> Context:
    """A quick-mode context writing under ``out``, its log lines collected in ``lines``."""
    sink = lines if lines is not None else []
    return Context(out=out, quick=True, profile=None, machine=MACHINE,
                   cache=out.parent / "cache", log=sink.append, **kw)
