"""Running a validation grid, resumably.

1. **Simulated capacity** of every (configuration, workload): a capacity ladder run in the
   simulator (cheap) — the live ladder's first guess.
2. **Live capacity**: one server per configuration, a short open-loop ladder per workload
   starting from 1.25x the simulated capacity (:func:`servelab.loadgen.ladder.climb`).
3. **Reference capacity** per workload: the median live capacity over the grid's
   configurations.  Every configuration at level ``f`` is offered the *same* rate
   ``f x C_ref``, so all are ranked at a common rate (and the weaker ones saturate); each point
   also records its own load, the rate over its own live capacity.
4. **Points**: one server per configuration again, each point run live and simulated (same
   workload, seed and configuration; ``sim_seeds`` seeds averaged), then the repeats.

Everything lands in the run folder as it is measured — ``grid.json``, ``capacities.json``,
``points.parquet``, each written atomically — and a resumed run skips what is there.
Simulated columns are recomputed whenever the profile differs from the one a point was
simulated with, so a new profile can be checked against the same live measurements.

**Machine speed** (``grid.rescale``, off by default).  Before each ladder and each point the
backend takes a speed probe (:mod:`servelab.calibrate.speed`) and the point is simulated with
the profile rescaled from the speed it was calibrated at to the speed the machine has then
(:mod:`servelab.core.speed`).  The probe's timings are stored with the point (``probe_*``
columns), so a re-simulation with another profile rescales against that profile's reference.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from servelab.analysis.validate.backend import Backend, Session
from servelab.analysis.validate.grid import (
    Cell,
    Eta,
    Grid,
    Plan,
    at_rate,
    ladder_cells,
    models_of,
    point_key,
    point_seed,
)
from servelab.analysis.validate.metrics import add_errors, is_saturated
from servelab.analysis.validate.store import Store
from servelab.core.profile import Profile
from servelab.core.speed import Speed, at_speed, reference
from servelab.core.workload import WorkloadSpec
from servelab.loadgen.ladder import DEFAULT_RULES, climb, step_from_summary

log = logging.getLogger(__name__)

STATS = ("p50_s", "p99_s", "throughput", "offered", "reward", "goodput", "slo_attainment",
         "failed", "not_sent")


def stats(summary: Mapping[str, Any]) -> dict[str, float]:
    """The point's figures from a :class:`servelab.summary.Summary` (its dict form; latencies
    in seconds)."""
    counts = summary["status"]
    n = max(int(summary["requests"]), 1)
    lat = summary["latency_s"]
    return {
        "p50_s": float(lat["p50"]), "p99_s": float(lat["p99"]),
        "throughput": float(summary["throughput"]), "offered": float(summary["offered_rate"]),
        "reward": float(summary["reward"]), "goodput": float(summary.get("goodput", math.nan)),
        "slo_attainment": float(summary.get("slo_attainment", math.nan)),
        "failed": sum(int(counts.get(k, 0)) for k in ("rejected", "timeout", "error")) / n,
        "not_sent": int(counts.get("not_sent", 0)) / n,
    }


def with_saturation(s: dict[str, float]) -> dict[str, Any]:
    return {**s, "saturated": is_saturated(s["throughput"], s["offered"], s["failed"])}


class Runner:
    """One validation: ``Runner(grid, profile, backend, store).run()`` -> the points table."""

    def __init__(self, grid: Grid, profile: Profile, backend: Backend, store: Store,
                 say: Callable[[str], None] = print, log_dir: Path | None = None,
                 budget_s: float | None = None) -> None:
        from servelab.workloads import load_workload

        self.grid, self.profile, self.backend, self.store = grid, profile, backend, store
        self.say, self.log_dir = say, log_dir
        self.specs = {wl: load_workload(wl) for wl in grid.workloads}
        self.models = models_of(self.specs.values())
        self.caps = store.capacities()
        self.plan = Plan.of(grid)
        self.eta = Eta(self.plan)
        self.start_times: list[float] = []
        self.budget_s, self.t0 = budget_s, time.perf_counter()
        self.stopped = ""
        """Why the run stopped before the end of the grid ('' = it did not)."""
        self._held: tuple[Cell, Session, ExitStack] | None = None
        self.ref = reference(profile) if grid.rescale else None
        self.resim_all = False
        """Re-simulate every stored point, not only those simulated with another profile."""
        """The profile's speed reference (None: no rescaling — off, or none recorded)."""

    # -- machine speed -------------------------------------------------------------------
    def probe(self) -> Speed | None:
        """The machine's speed now, over the grid's models and the interpreter (None: no
        reference to compare with, or the backend cannot probe)."""
        if self.ref is None:
            return None
        items = [m for m in self.models if m in self.ref.seconds]
        return self.backend.speed(items, str(self.profile.machine.extra["speed"].get(
            "variant", "full")))

    def profile_at(self, probe: Mapping[str, float] | None) -> tuple[Profile, dict[str, float]]:
        """The profile rescaled to the speed of ``probe`` (item -> seconds; None or empty:
        the profile as calibrated) and the factors applied."""
        if self.ref is None or not probe:
            return self.profile, {}
        return at_speed(self.profile, Speed(dict(probe)))

    def profile_for(self, row: Mapping[str, Any]) -> Profile:
        """The profile a stored point is simulated with (its own probe's speed)."""
        return self.profile_at(probe_of(row))[0]

    def _over_budget(self, next_s: float) -> bool:
        """Whether the next piece of work (``next_s`` planned seconds) would overrun the time
        budget; if so the run stops there (resumable)."""
        if self.budget_s is None or self.stopped:
            return bool(self.stopped)
        if time.perf_counter() - self.t0 + next_s > self.budget_s:
            self.stopped = (f"time budget of {self.budget_s / 60:.0f} min reached; "
                            "resume to finish the grid")
            self.say(f"stopping: {self.stopped}")
        return bool(self.stopped)

    # -- simulation ----------------------------------------------------------------------
    def config(self, cell: Cell) -> Any:
        return replace(cell.config(self.models), kernel=self.grid.kernel)

    def spec(self, workload: str, rate: float, seed: int) -> WorkloadSpec:
        g = self.grid
        return at_rate(self.specs[workload], rate, g.duration, g.warmup, seed)

    def sim_capacity(self, cell: Cell, workload: str, profile: Profile | None = None
                     ) -> tuple[float, str]:
        """The simulated capacity (the same ladder and rules as live, long simulated steps)."""
        from servelab.sim.run import simulate

        profile = profile or self.profile
        spec, cfg = self.specs[workload], self.config(cell)
        mean_s = float(np.mean([profile.model(m).mean_service(_typical_size(spec, m))
                                for m in spec.models]))
        guess = min(cell.workers, profile.machine.cores) / max(mean_s, 1e-6)

        def measure(rate: float) -> Any:
            dur = max(8.0, 1500.0 / rate)
            wl = at_rate(spec, rate, dur, 0.2 * dur, self.grid.seed + 7, poisson=True)
            res = simulate(cfg, wl, profile, seed=wl.seed)
            return step_from_summary(rate, res.summary)

        lad = climb(measure, 0.6 * guess, up=1.25, max_steps=14)
        return lad.capacity, lad.note

    def simulate(self, cell: Cell, spec: WorkloadSpec, profile: Profile | None = None
                 ) -> dict[str, Any]:
        """The point simulated on the live run's own arrivals (its seed) under ``sim_seeds``
        draws of the service-time noise, averaged: the comparison is then paired — the
        same requests at the same instants — and only the noise is averaged out."""
        from servelab.sim.run import simulate

        rows = [stats(simulate(self.config(cell), spec, profile or self.profile, seed=spec.seed,
                               noise_seed=spec.seed + k, slo_ms=dict(self.grid.slo_ms)).summary)
                for k in range(self.grid.sim_seeds)]
        return with_saturation({k: float(np.nanmean([r[k] for r in rows])) for k in STATS})

    # -- live ----------------------------------------------------------------------------
    def _session(self, cell: Cell, phase: str) -> Any:
        logp = self.log_dir / f"server-{cell.key}-{phase}.log" if self.log_dir else None
        return self.backend.session(self.config(cell), logp)

    @property
    def warm_workload(self) -> str:
        """The workload with the most models: a fresh server's first request to each model is
        slow (lazy initialisation), so the warm-up run sends to all of them."""
        return max(self.specs, key=lambda w: len(self.specs[w].models))

    def _warm(self, srv: Session, capacity: float) -> None:
        """A short unrecorded run at 30% of ``capacity`` (the warm-up workload's)."""
        g = self.grid
        if g.server_warmup_s > 0:
            rate = max(0.3 * capacity, 2.0 / g.server_warmup_s)
            srv.run(at_rate(self.specs[self.warm_workload], rate, g.server_warmup_s, 0.0,
                            g.seed + 900))

    def live(self, srv: Session, spec: WorkloadSpec) -> dict[str, Any]:
        from servelab.summary import Window, summarize

        return with_saturation(stats(summarize(srv.run(spec), Window.of(spec),
                                               slo_ms=dict(self.grid.slo_ms)).to_dict()))

    def cap(self, cell: Cell, workload: str) -> dict[str, Any]:
        """The capacity entry of ``cell``'s setup and pool size for ``workload``."""
        return self.caps[cell.capacity_key][workload]

    def capacities(self) -> dict[str, dict[str, Any]]:
        """Live (and simulated) capacity of every (setup x pool size, workload); resumable."""
        g = self.grid
        todo = [c for c in ladder_cells(g.cells).values()
                if any(wl not in self.caps.get(c.capacity_key, {}) for wl in g.workloads)]
        self.eta.add("start", len(todo))
        self.eta.add("ladder", sum(1 for c in todo for wl in g.workloads
                                   if wl not in self.caps.get(c.capacity_key, {})))
        for n, cell in enumerate(todo, 1):
            if self._over_budget(self.plan.start_s + self.plan.ladder_s):
                break
            srv, stack = self._open(cell, "ladder")
            speed = self.probe()
            now, factors = self.profile_at(speed.seconds if speed else None)
            sims = {wl: self.sim_capacity(cell, wl, now) for wl in g.workloads}
            with stack:
                for wl in g.workloads:
                    if wl in self.caps.get(cell.capacity_key, {}):
                        continue
                    t = time.perf_counter()
                    lad = self._ladder(srv, wl, sims[wl][0])
                    self.caps.setdefault(cell.capacity_key, {})[wl] = {
                        "live": lad.capacity, "note": lad.note, "bounded": lad.bounded,
                        "on": cell.key, "steps": [s.row() for s in lad.steps],
                        "sim": sims[wl][0], "sim_note": sims[wl][1],
                        "wall_s": time.perf_counter() - t, "speed": factors,
                    }
                    self.store.save_capacities(self.caps)
                    self.eta.done("ladder")
                    self.say(f"[capacity {n}/{len(todo)}] {cell.label:<24} {wl:<10} live "
                             f"{lad.capacity:7.1f} req/s  sim {sims[wl][0]:7.1f}  "
                             f"({lad.note}; {len(lad.steps)} steps)  ETA {self.eta}")
                if n == len(todo):  # the points phase starts with this server, warm
                    self._held = (cell, srv, stack.pop_all())
        return self.caps

    def _open(self, cell: Cell, phase: str) -> tuple[Session, ExitStack]:
        """A server for ``cell``: the one held over from the capacity phase if it serves this
        configuration (no start, no warm-up), else a fresh one."""
        held, self._held = self._held, None
        if held is not None:
            if held[0] == cell:
                return held[1], held[2]
            held[2].close()
        stack = ExitStack()
        try:
            t = time.perf_counter()
            srv = stack.enter_context(self._session(cell, phase))
            self._started(t)
        except BaseException:
            stack.close()
            raise
        return srv, stack

    def close(self) -> None:
        """Stop a server still held over from the capacity phase (and the speed probe)."""
        held, self._held = self._held, None
        if held is not None:
            held[2].close()
        self.backend.close()

    def _ladder(self, srv: Session, workload: str, sim_cap: float) -> Any:
        g, spec = self.grid, self.specs[workload]
        k = iter(range(100))

        def measure(rate: float) -> Any:
            from servelab.summary import Window, summarize

            wl = at_rate(spec, rate, g.ladder_step_s, g.ladder_warmup_s, g.seed + 500 + next(k),
                         poisson=True)
            return step_from_summary(rate, summarize(srv.run(wl), Window.of(wl)).to_dict())

        return climb(measure, 1.25 * max(sim_cap, 0.5), up=1.3, down=0.85,
                     max_steps=g.ladder_steps, rules=DEFAULT_RULES)

    def _started(self, t: float) -> None:
        """A server started at ``t`` is up."""
        self.start_times.append(time.perf_counter() - t)
        self.eta.done("start")

    def c_ref(self) -> dict[str, float]:
        """Per workload, the median live capacity over the grid's configurations."""
        return {wl: float(np.median([self.cap(c, wl)["live"] for c in self.grid.cells]))
                for wl in self.grid.workloads}

    def repeat_cells(self, workload: str, c_ref: float) -> list[Cell]:
        """The configurations whose capacity is closest to the reference (typical points)."""
        dist = {c: abs(math.log(max(self.cap(c, workload)["live"], 1e-9) / c_ref))
                for c in self.grid.cells}
        return sorted(self.grid.cells, key=lambda c: dist[c])[: self.grid.repeat_cells]

    def plan_points(self, c_ref: Mapping[str, float]) -> dict[Cell, list[tuple[str, float, int]]]:
        g = self.grid
        todo: dict[Cell, list[tuple[str, float, int]]] = {c: [] for c in g.cells}
        for c in g.cells:
            todo[c] += [(wl, f, 0) for wl in g.workloads for f in g.loads]
        for wl in g.workloads:
            for c in self.repeat_cells(wl, c_ref[wl]):
                todo[c] += [(wl, f, r) for r in range(1, g.repeats) for f in g.repeat_levels]
        return todo

    def points(self) -> pd.DataFrame:
        """Run every point not yet in the store; the whole table."""
        c_ref = self.c_ref()
        df = self.store.points()
        have = set(df["key"]) if not df.empty else set()
        todo = {c: [p for p in ps if point_key(p[0], c, p[1], p[2]) not in have]
                for c, ps in self.plan_points(c_ref).items()}
        todo = {c: ps for c, ps in todo.items() if ps}
        total = sum(len(ps) for ps in todo.values())
        self.eta.add("start", len(todo) - (self._held is not None and self._held[0] in todo))
        self.eta.add("point", total)
        rows = df.to_dict("records") if not df.empty else []
        i = 0
        held = self._held[0] if self._held is not None else None
        for cell, ps in sorted(todo.items(), key=lambda kv: kv[0] != held):
            if self._over_budget(self.plan.start_s + self.plan.point_s):
                break
            fresh = cell != held
            srv, stack = self._open(cell, "points")
            with stack:
                if fresh:
                    self._warm(srv, min(c_ref[self.warm_workload],
                                        self.cap(cell, self.warm_workload)["live"]))
                for wl, f, rep in ps:
                    if self._over_budget(self.plan.point_s):
                        break
                    i += 1
                    rows.append(self._point(srv, cell, wl, f, rep, c_ref[wl]))
                    self.store.save_points(pd.DataFrame(rows))
                    self.eta.done("point")
                    self.say(f"[{i}/{total}] " + progress_line(rows[-1]) + f"  ETA {self.eta}")
        self.close()
        return pd.DataFrame(rows)

    def _point(self, srv: Session, cell: Cell, wl: str, f: float, rep: int, c_ref: float
               ) -> dict[str, Any]:
        cap = self.cap(cell, wl)
        rate = f * c_ref
        spec = self.spec(wl, rate, point_seed(self.grid, wl, f))
        speed = self.probe()
        now, factors = self.profile_at(speed.seconds if speed else None)
        t = time.perf_counter()
        live = self.live(srv, spec)
        wall = time.perf_counter() - t
        sim = self.simulate(cell, spec, now)
        cfg = self.config(cell)
        return {
            "key": point_key(wl, cell, f, rep), "split": "validation", "workload": wl,
            "cell": cell.key, "setup": cell.setup, "workers": cell.workers,
            "scheduler": cell.scheduler, "config_id": cfg.config_id, "load": f, "repeat": rep,
            "rate": rate, "c_ref": c_ref, "live_capacity": cap["live"],
            "live_capacity_bounded": bool(cap["bounded"]), "capacity_on": cap["on"],
            "sim_capacity": cap["sim"],
            "own_load": rate / cap["live"] if cap["live"] > 0 else math.inf,
            "sim_own_load": rate / cap["sim"] if cap["sim"] > 0 else math.inf,
            "duration": self.grid.duration, "warmup": self.grid.warmup, "seed": spec.seed,
            "sim_seeds": self.grid.sim_seeds, "variant": self.grid.variant,
            **{f"live_{k}": v for k, v in live.items()},
            **{f"sim_{k}": v for k, v in sim.items()},
            "profile": self.profile.digest, "live_wall_s": wall,
            **{f"probe_{k}_s": v for k, v in (speed.seconds.items() if speed else ())},
            **{f"speed_{k}": v for k, v in factors.items()},
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }

    def resimulate(self, points: pd.DataFrame, every: bool = False) -> pd.DataFrame:
        """The simulated columns again, with this runner's profile, for the points simulated
        with another (``every``: for all of them — the simulator itself changed)."""
        stale = (points["profile"] != self.profile.digest) | every
        if not stale.any():
            return points
        out = points.copy()
        sim_caps: dict[tuple[str, str], float] = {}
        for i in out.index[stale]:
            r = out.loc[i]
            cell = Cell.parse(str(r["cell"]))
            key = (cell.capacity_key, str(r["workload"]))
            now, factors = self.profile_at(probe_of(r))
            if key not in sim_caps:  # (at the speed of the first point that needs it)
                on = ladder_cells(self.grid.cells).get(cell.capacity_key, cell)
                sim_caps[key] = self.sim_capacity(on, key[1], now)[0]
            spec = self.spec(key[1], float(r["rate"]), int(r["seed"]))
            for k, v in self.simulate(cell, spec, now).items():
                out.at[i, f"sim_{k}"] = v
            for k, v in factors.items():
                out.at[i, f"speed_{k}"] = v
            out.at[i, "sim_capacity"] = sim_caps[key]
            out.at[i, "sim_own_load"] = float(r["rate"]) / sim_caps[key]
            out.at[i, "profile"] = self.profile.digest
        self.say(f"re-simulated {int(stale.sum())} points with profile {self.profile.digest}")
        return out

    def run(self) -> pd.DataFrame:
        try:
            self.capacities()
            if self.stopped:
                return self.store.points()
            points = self.points()
        finally:
            self.close()
        if points.empty:
            return points
        points = add_errors(self.resimulate(points, self.resim_all))
        self.store.save_points(points)
        return points


def probe_of(row: Mapping[str, Any]) -> dict[str, float]:
    """The speed probe stored with a point (item -> seconds; empty if none was taken)."""
    out = {}
    for k, v in row.items():
        if str(k).startswith("probe_") and str(k).endswith("_s"):
            x = float(v)
            if math.isfinite(x) and x > 0:
                out[str(k)[len("probe_"):-2]] = x
    return out


def _typical_size(spec: WorkloadSpec, model: str) -> float:
    """A representative input size of ``model`` in ``spec`` (the first phase's)."""
    d = (spec.effective_phases()[0].sizes or {}).get(model)
    if d is None:
        return 1.0
    if d.kind == "fixed":
        return float(d.value)
    if d.kind == "lognormal":
        return float(d.median)
    if d.kind == "uniform":
        return (d.low + d.high) / 2
    return float(np.average(d.values, weights=d.weights or None))


def progress_line(r: Mapping[str, Any]) -> str:
    """One point, live vs sim, on one line."""
    def sat(src: str) -> str:
        return " SAT" if r[f"{src}_saturated"] else ""

    rep = f" (repeat {r['repeat']})" if r["repeat"] else ""
    return (f"{r['workload']:<10} {r['load']:>4.0%} {Cell.parse(r['cell']).label:<22}{rep} "
            f"{r['rate']:6.1f}/s own {r['own_load']:4.2f} | live p50 {r['live_p50_s'] * 1e3:7.1f} "
            f"p99 {r['live_p99_s'] * 1e3:7.1f} ms thr {r['live_throughput']:6.1f}{sat('live')} | "
            f"sim p50 {r['sim_p50_s'] * 1e3:7.1f} p99 {r['sim_p99_s'] * 1e3:7.1f} ms thr "
            f"{r['sim_throughput']:6.1f}{sat('sim')}")
