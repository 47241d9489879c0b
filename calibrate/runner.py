"""Run calibration points pyperf-style: each point in a fresh worker process, resumably.

A *point* is one measurement configuration — a benchmark name plus its parameters.  The runner
starts ``python -m servelab.calibrate.worker`` for each point (torch's thread-pool state leaks
between configurations inside one process and would corrupt the next measurement), the worker
warms up, takes its samples and prints them as one JSON object.  Each finished point is stored
atomically as ``points/<point-id>.json`` under the run's folder, so a killed run resumes where it
stopped: finished points are skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from servelab.results import write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Point:
    bench: str
    params: Mapping[str, Any] = field(default_factory=dict)
    warmups: int = 2
    samples: int = 10

    @property
    def id(self) -> str:
        blob = json.dumps({"bench": self.bench, "params": dict(self.params)}, sort_keys=True)
        label = "-".join(f"{k}{v}" for k, v in sorted(self.params.items()) if len(str(v)) < 24)
        return f"{self.bench}-{label}-{hashlib.sha1(blob.encode()).hexdigest()[:8]}"

    def to_json(self) -> str:
        return json.dumps({
            "bench": self.bench, "params": dict(self.params),
            "warmups": self.warmups, "samples": self.samples,
        })


class PointFailed(RuntimeError):
    pass


def measure_point(point: Point, timeout: float = 600.0) -> dict[str, Any]:
    """Run one point in a fresh interpreter and return its result object."""
    env = dict(os.environ)
    # Every worker sets its own thread counts explicitly; keep libraries from guessing first.
    env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.run(
        [sys.executable, "-m", "servelab.calibrate.worker", point.to_json()],
        capture_output=True, text=True, timeout=timeout, env=env,
    )
    if proc.returncode != 0:
        raise PointFailed(f"{point.id}: worker exited {proc.returncode}: {proc.stderr[-2000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise PointFailed(f"{point.id}: worker printed no result; stderr: {proc.stderr[-2000:]}")
    return json.loads(lines[-1])


def run_points(
    points: Iterable[Point], folder: Path, progress: bool = True, timeout: float = 600.0,
    in_process: bool = False,
) -> list[dict[str, Any]]:
    """Run every point not already finished under ``folder/points``; return all results.

    ``in_process=True`` runs points in this process (for tests of the machinery only: it loses
    the isolation that makes the numbers trustworthy).
    """
    pts = list(points)
    done_dir = Path(folder) / "points"
    done_dir.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    todo = []
    for p in pts:
        f = done_dir / f"{p.id}.json"
        if f.exists():
            results.append(json.loads(f.read_text()))
        else:
            todo.append(p)
    if results:
        log.info("resuming: %d of %d points already measured", len(results), len(pts))
    bar = tqdm(todo, desc="calibrate", unit="point", disable=not progress, dynamic_ncols=True)
    for p in bar:
        bar.set_postfix_str(p.id[:40])
        if in_process:
            from servelab.calibrate.worker import measure

            res = measure(json.loads(p.to_json()))
        else:
            res = measure_point(p, timeout)
        res = {"id": p.id, "bench": p.bench, "params": dict(p.params), **res}
        write_json(done_dir / f"{p.id}.json", res)
        results.append(res)
    return results
