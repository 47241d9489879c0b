"""Section 6's CPU-scheduling row: starvation of the slow class, FIFO vs priority.

Simulated (the SimPy model with a calibrated profile, or the design's default profile when
none is given: the figure says which), through the scheduling study's own grid
(:func:`servelab.analysis.sched_study.sim.run_sim`): the shipped ``mixed`` workload (MobileNetV2
class 0, LSTM class 1, DistilBERT class 2) on a threads server with two workers at 90% of its
simulated capacity, every policy on the same arrivals.  Under non-preemptive priority the slow
class (DistilBERT) waits behind every more urgent request that keeps arriving: its mean and
longest wait grow while the fast classes' shrink — starvation, the price of priority.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd


def measure(quick: bool = True, variant: str = "full", profile: Path | None = None,
            **over: Any) -> pd.DataFrame:
    from servelab.analysis.sched_study.sim import run_sim
    from servelab.core.profile import Profile, default_profile
    from servelab.workloads import load_workload

    prof = Profile.load(profile) if profile is not None else default_profile()
    spec = load_workload("mixed")
    loads = tuple(over.get("loads", (0.9,)))
    seeds = tuple(over.get("seeds", (0, 1, 2) if quick else (0, 1, 2, 3, 4)))
    frames = []
    for seed in seeds:  # each seed: new arrivals and service times, shared by the policies
        study = run_sim(prof, spec, ["threads"], loads, ["fifo", "priority", "mlfq"],
                        workers=2, requests=int(over.get("requests", 3000 if quick else 20000)),
                        seed=seed)
        frames.append(study.cells.assign(seed=seed))
    df = pd.concat(frames, ignore_index=True)
    df["profile"] = str(profile) if profile is not None else "default_profile() (design figures)"
    return df
