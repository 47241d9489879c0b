"""Laying out a built report: ``report.html``, ``report.md``, the data and ``summary.json``.

* ``report.html`` — self-contained: inline CSS, every PNG embedded as base64, no script, no
  external link; readable offline.  A header with the machine the report ran on (CPU model,
  usable cores, memory, load average at the start and the end), a table of contents, then per
  section its question, its one-sentence answer, its notes, and per figure the claim, the
  command that reproduces it, its fidelity (simulated vs live) and spread (over repeats) lines.
* ``report.md`` — the same text, images linked relatively (``figures/<name>.png``).
* ``figures/<name>.png`` and ``figures/<name>.parquet`` (the data behind it), ``tables/<name>.
  parquet``;
* ``summary.json`` — machine, sections (status, time, answer, figures, tables, notes), the
  answers, every command, timing.
"""

from __future__ import annotations

import base64
import html
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from servelab.analysis.report.build import Outcome, fmt_s
from servelab.analysis.report.section import Figure, Table
from servelab.analysis.report.store import write_frame
from servelab.results import write_json

MAX_TABLE_ROWS = 40


@dataclass
class ReportInfo:
    """What the header and the summary say about the run itself."""

    command: str
    machine: dict[str, Any]
    profile: str
    quick: bool
    variant: str
    started_at: str = ""
    wall_s: float = math.nan
    loadavg_end: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def machine_line(m: dict[str, Any], loadavg_end: Sequence[float] = ()) -> str:
    """One sentence: what the report ran on."""
    mem = m.get("memory_bytes")
    parts = [f"{m.get('cpu_model', '?')}, {m.get('cores', '?')} usable cores"
             + (f" of {m['logical_cpus']} logical" if m.get("logical_cpus") not in
                (None, m.get("cores")) else "")]
    if mem:
        parts.append(f"{mem / 2**30:.0f} GiB memory")
    la = m.get("loadavg")
    if la:
        parts.append("load average (1/5/15 min) " + "/".join(f"{x:.2f}" for x in la)
                     + " at the start")
    if loadavg_end:
        parts.append("/".join(f"{x:.2f}" for x in loadavg_end) + " at the end")
    parts.append(f"{m.get('os', '')} {m.get('kernel', '')}, Python {m.get('python', '?')}, "
                 f"torch {m.get('torch', '?')}, host {m.get('hostname', '?')}")
    return "; ".join(parts)


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        if math.isnan(x):
            return "–"
        return f"{x:.4g}"
    return str(x)


def markdown_table(df: pd.DataFrame, max_rows: int = MAX_TABLE_ROWS) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.head(max_rows).itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |")
    if len(df) > max_rows:
        lines.append(f"\n({len(df) - max_rows} more rows in the Parquet file)")
    return "\n".join(lines)


def html_table(df: pd.DataFrame, max_rows: int = MAX_TABLE_ROWS) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
        for row in df.head(max_rows).itertuples(index=False))
    more = (f"<p class='more'>({len(df) - max_rows} more rows in the Parquet file)</p>"
            if len(df) > max_rows else "")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em
auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;
margin-top:2.2em}h3{font-size:1.05em;margin-top:1.6em}
.machine,.meta{color:#555;font-size:.92em}.answer{background:#eef6ee;border-left:5px solid
#3a7d44;padding:.6em 1em;font-size:1.05em}.failed{background:#fbeaea;border-left:5px solid
#b33;padding:.6em 1em}.note{color:#555;font-size:.92em}
figure{margin:1.2em 0;padding:.8em;border:1px solid #e4e4e4;border-radius:4px}
figure img{max-width:100%;height:auto;display:block;margin:0 auto}
figcaption{font-size:.92em;margin-top:.6em}figcaption p{margin:.25em 0}
code{background:#f4f4f4;padding:1px 4px;border-radius:3px;font-size:.9em;word-break:break-all}
table{border-collapse:collapse;font-size:.82em;margin:.6em 0;display:block;overflow-x:auto}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:right;white-space:nowrap}
th{background:#f4f4f4}nav ol{padding-left:1.4em;list-style:none}nav li{margin:.15em 0}.more{font-size:.85em}
"""


class _Writer:
    """Copies the figures and writes the data; remembers where each went."""

    def __init__(self, out: Path) -> None:
        self.out = out
        (out / "figures").mkdir(parents=True, exist_ok=True)
        (out / "tables").mkdir(parents=True, exist_ok=True)

    def figure(self, fig: Figure) -> dict[str, str]:
        png = self.out / "figures" / f"{fig.name}.png"
        if Path(fig.png).resolve() != png.resolve():
            shutil.copyfile(fig.png, png)
        data = self.out / "figures" / f"{fig.name}.parquet"
        write_frame(data, fig.data)
        return {"png": f"figures/{fig.name}.png", "parquet": f"figures/{fig.name}.parquet"}

    def table(self, tab: Table) -> str:
        write_frame(self.out / "tables" / f"{tab.name}.parquet", tab.data)
        return f"tables/{tab.name}.parquet"


def _figure_lines(fig: Figure) -> list[tuple[str, str]]:
    lines = [("Claim", fig.claim), ("Reproduce", fig.command)]
    lines.append(("Fidelity", fig.fidelity or "no simulated/live pair for this figure"))
    lines.append(("Spread", fig.spread or "a single run: no repeats"))
    return lines


def render(out: Path, outcomes: Sequence[Outcome], info: ReportInfo) -> dict[str, Any]:
    """Write the report files under ``out``; returns the summary (also ``summary.json``)."""
    w = _Writer(out)
    md: list[str] = []
    body: list[str] = []
    toc: list[str] = []
    sections: list[dict[str, Any]] = []
    commands: list[str] = [info.command]
    head_md = [f"# servelab report{' (quick)' if info.quick else ''}", "",
               f"**Machine:** {machine_line(info.machine, info.loadavg_end)}", "",
               f"**Profile:** {info.profile}  ", f"**Command:** `{info.command}`  ",
               f"**Started:** {info.started_at}; wall time {fmt_s(info.wall_s)}"
               if math.isfinite(info.wall_s) else f"**Started:** {info.started_at}", ""]
    md += head_md
    for note in info.notes:
        md.append(f"> {note}")
    for o in outcomes:
        sid = f"sec-{o.key}"
        entry: dict[str, Any] = {"key": o.key, "title": o.title, "order": o.order,
                                 "status": o.status, "seconds": o.seconds, "error": o.error}
        md += ["", f"## {o.order}. {o.title}", ""]
        body.append(f"<section id='{sid}'><h2>{o.order}. {html.escape(o.title)}</h2>")
        sub: list[str] = []
        if o.section is None:
            msg = (f"This section failed after {fmt_s(o.seconds)}: {o.error}. The traceback is "
                   f"in build.log; `servelab report --resume {out} --sections {o.key}` "
                   "builds it again, reusing the others.")
            md.append(f"**FAILED.** {msg}")
            body.append(f"<p class='failed'><b>FAILED.</b> {html.escape(msg)}</p>")
            entry.update(answer=None, figures=[], tables=[], notes=[])
        else:
            s = o.section
            md.append(f"**Answer.** {s.answer}")
            body.append(f"<p class='answer'><b>Answer.</b> {html.escape(s.answer)}</p>")
            body.append(f"<p class='meta'>built in {fmt_s(o.seconds)}"
                        f"{' (reused from an earlier build)' if o.status == 'reused' else ''}</p>")
            for n in s.notes:
                md.append(f"\n> {n}")
                body.append(f"<p class='note'>Note: {html.escape(n)}</p>")
            figs = []
            for k, fig in enumerate(s.figures, 1):
                paths = w.figure(fig)
                fid = f"fig-{fig.name}"
                label = f"Figure {o.order}.{k}"
                sub.append(f"<li><a href='#{fid}'>{label}: {html.escape(fig.name)}</a></li>")
                png64 = base64.b64encode((out / paths["png"]).read_bytes()).decode("ascii")
                caps = "".join(
                    f"<p><b>{k_}:</b> " + (f"<code>{html.escape(v)}</code>" if k_ == "Reproduce"
                                           else html.escape(v)) + "</p>"
                    for k_, v in _figure_lines(fig))
                body.append(
                    f"<figure id='{fid}' data-figure='{html.escape(fig.name)}'>"
                    f"<h3>{label}</h3><img alt='{html.escape(fig.name)}' "
                    f"src='data:image/png;base64,{png64}'>"
                    f"<figcaption>{caps}<p class='note'>data: {paths['parquet']}</p>"
                    "</figcaption></figure>")
                md += ["", f"### {label}", "", f"![{fig.name}]({paths['png']})", ""]
                md += [f"- **{k_}:** " + (f"`{v}`" if k_ == "Reproduce" else v)
                       for k_, v in _figure_lines(fig)]
                md.append(f"- data: `{paths['parquet']}`")
                commands.append(fig.command)
                figs.append({"name": fig.name, **paths, "claim": fig.claim,
                             "command": fig.command, "fidelity": fig.fidelity,
                             "spread": fig.spread})
            tabs = []
            for k, tab in enumerate(s.tables, 1):
                path = w.table(tab)
                label = f"Table {o.order}.{k}"
                body.append(f"<div class='table' id='tab-{html.escape(tab.name)}'><h3>{label}: "
                            f"{html.escape(tab.caption)}</h3>{html_table(tab.data)}"
                            f"<p class='note'>Reproduce: <code>{html.escape(tab.command)}</code>;"
                            f" data: {path}</p></div>")
                md += ["", f"### {label}: {tab.caption}", "", markdown_table(tab.data), "",
                       f"Reproduce: `{tab.command}`; data: `{path}`"]
                commands.append(tab.command)
                tabs.append({"name": tab.name, "parquet": path, "caption": tab.caption,
                             "command": tab.command})
            entry.update(answer=s.answer, figures=figs, tables=tabs, notes=list(s.notes))
        body.append("</section>")
        mark = "" if o.ok else " — FAILED"
        toc.append(f"<li><a href='#{sid}'>{o.order}. {html.escape(o.title)}</a>{mark}"
                   + (f"<ol>{''.join(sub)}</ol>" if sub else "") + "</li>")
        sections.append(entry)
    built_s = sum(o.seconds for o in outcomes)
    reused = any(o.status == "reused" for o in outcomes)
    if reused:
        md.insert(len(head_md) - 1, f"**Build time:** the sections' own build times add up "
                  f"to {fmt_s(built_s)} (some reused from an earlier build)")
    notes_html = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in info.notes)
    title = f"servelab report{' (quick)' if info.quick else ''}"
    started = html.escape(info.started_at) + (
        f"; wall time {fmt_s(info.wall_s)}" if math.isfinite(info.wall_s) else "") + (
        f"; the sections' own build times add up to {fmt_s(built_s)} (some reused from an "
        "earlier build)" if reused else "")
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{title}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{title}</h1>"
        f"<p class='machine'><b>Machine:</b> "
        f"{html.escape(machine_line(info.machine, info.loadavg_end))}</p>"
        f"<p class='meta'><b>Profile:</b> {html.escape(info.profile)}<br>"
        f"<b>Command:</b> <code>{html.escape(info.command)}</code><br>"
        f"<b>Started:</b> {started}</p>{notes_html}</header>"
        f"<nav><h2>Contents</h2><ol>{''.join(toc)}</ol></nav>"
        + "".join(body) + "</body></html>")
    (out / "report.html").write_text(page)
    (out / "report.md").write_text("\n".join(md) + "\n")
    summary = {
        "kind": "report", "command": info.command, "started_at": info.started_at,
        "quick": info.quick, "variant": info.variant, "profile": info.profile,
        "machine": info.machine, "loadavg_end": info.loadavg_end, "notes": info.notes,
        "sections": sections,
        "answers": {e["key"]: e["answer"] for e in sections},
        "failed": [e["key"] for e in sections if e["status"] == "failed"],
        "commands": list(dict.fromkeys(commands)),
        "timing": {"wall_s": info.wall_s, "sections_total_s": built_s,
                   "reused": [o.key for o in outcomes if o.status == "reused"],
                   "sections_s": {e["key"]: e["seconds"] for e in sections}},
    }
    write_json(out / "summary.json", summary)
    return summary
