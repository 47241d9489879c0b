"""``servelab demo``: the main job, end to end on what exists so far.

It loads each model of the zoo, serves a short mixed workload for real — every request
preprocessed, run stage by stage and postprocessed, its stage times measured — and then replays
those measured requests through each queue policy on one worker, printing per-policy waits.
Later stages of the pipeline (calibration, simulation, live cross-check) replace the replay.
"""

from __future__ import annotations

import argparse
import heapq
import logging
import time
from dataclasses import dataclass

import numpy as np

from servelab.core.policies import POLICIES, make_policy
from servelab.core.predictor import MeanPredictor, OraclePredictor
from servelab.core.requests import Request

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workload", default="mixed", help="shipped workload name or file")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds of workload to use")
    parser.add_argument("--variant", default="full", choices=("full", "tiny"), help="model size")
    parser.add_argument("--seed", type=int, default=0, help="workload seed")


@dataclass
class Measured:
    request: Request
    stages: list[float]  # seconds: preprocess, each forward stage, postprocess


def measure(requests: list[Request], variant: str, seed: int) -> list[Measured]:
    """Serve each request for real, one at a time, timing every stage."""
    import torch

    from servelab.servers.zoo import get_model

    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    models = {m: get_model(m, variant=variant) for m in sorted({r.model for r in requests})}
    for name, model in models.items():
        t = time.perf_counter()
        model.load()
        model.infer([model.make_input(None, rng)])  # warm-up
        print(f"  loaded {name:<16} {model.num_parameters() / 1e6:6.2f}M params "
              f"in {time.perf_counter() - t:5.2f}s")
    out = []
    for r in requests:
        model = models[r.model]
        inputs = [model.make_input(r.input_size, rng)]
        t0 = time.perf_counter()
        batch = model.preprocess(inputs)
        times = [time.perf_counter() - t0]
        t = time.perf_counter()
        state = None
        for state in model.run_stages(batch):
            now = time.perf_counter()
            times.append(now - t)
            t = now
        t = time.perf_counter()
        model.postprocess(state, 1)
        times.append(time.perf_counter() - t)
        r.service_time = sum(times)
        out.append(Measured(r, times))
    return out


def replay(measured: list[Measured], policy_name: str) -> list[Request]:
    """One worker serves the measured requests under ``policy_name`` on a virtual clock."""
    predictor = OraclePredictor() if policy_name == "sjf" else MeanPredictor(
        _model_means(measured)
    )
    policy = make_policy(policy_name, predictor=predictor)
    reqs = [Request(id=m.request.id, model=m.request.model, input_size=m.request.input_size,
                    arrival=m.request.arrival, priority=m.request.priority,
                    service_time=m.request.service_time) for m in measured]
    stages = {m.request.id: m.stages for m in measured}
    arrivals = [(r.arrival, r.id, r) for r in reqs]
    heapq.heapify(arrivals)
    clock, done = 0.0, []
    while arrivals or policy:
        if not policy:
            clock = max(clock, arrivals[0][0])
        while arrivals and arrivals[0][0] <= clock:
            _, _, r = heapq.heappop(arrivals)
            r.enqueue, r.queue_len_at_arrival = r.arrival, len(policy)
            policy.push(r, r.arrival)
        r = policy.pop(clock)
        if np.isnan(r.start):
            r.start = clock
        seq = stages[r.id]
        while r.stage < len(seq):
            clock += seq[r.stage]
            r.stage += 1
            if r.stage < len(seq) and policy.on_run(r, seq[r.stage - 1], clock):
                break
        if r.stage < len(seq):
            while arrivals and arrivals[0][0] <= clock:
                _, _, a = heapq.heappop(arrivals)
                a.enqueue, a.queue_len_at_arrival = a.arrival, len(policy)
                policy.push(a, a.arrival)
            policy.requeue(r, clock)
            continue
        r.end, r.status, r.worker, r.batch_size = clock, "ok", 0, 1
        done.append(r)
    return done


def _model_means(measured: list[Measured]) -> dict[str, float]:
    by: dict[str, list[float]] = {}
    for m in measured:
        by.setdefault(m.request.model, []).append(m.request.service_time or 0.0)
    return {k: float(np.mean(v)) for k, v in by.items()}


def run(args: argparse.Namespace) -> int:
    from servelab.workloads import load_workload

    spec = load_workload(args.workload, seed=args.seed)
    arr = spec.generate()
    requests = [r for r in arr.requests() if r.arrival < args.duration]
    print(f"servelab demo — workload {args.workload!r}, first {args.duration:g}s: "
          f"{len(requests)} requests ({', '.join(spec.models)})")
    print("1. loading the zoo and serving every request for real (1 intra-op thread)")
    measured = measure(requests, args.variant, args.seed)
    print(f"\n   {'model':<16} {'requests':>8} {'mean ms':>8} {'p99 ms':>8} {'stages':>7}")
    for model, ms in sorted(_group(measured).items()):
        st = np.array([m.request.service_time for m in ms]) * 1e3
        print(f"   {model:<16} {len(ms):>8} {st.mean():>8.1f} {np.percentile(st, 99):>8.1f} "
              f"{len(ms[0].stages):>7}")
    busy = sum(m.request.service_time or 0.0 for m in measured)
    print(f"\n2. replaying them on one worker under each queue policy "
          f"(offered load {busy / args.duration:.2f} of one core)")
    print(f"   {'policy':<9} {'mean wait ms':>12} {'p99 latency ms':>14}  per-model mean wait ms")
    for name in POLICIES:
        done = replay(measured, name)
        assert len(done) == len(measured), "a request was lost"
        wait = np.array([r.wait for r in done]) * 1e3
        lat = np.array([r.latency for r in done]) * 1e3
        per = {m: np.mean([r.wait for r in done if r.model == m]) * 1e3
               for m in sorted({r.model for r in done})}
        print(f"   {name:<9} {wait.mean():>12.1f} {np.percentile(lat, 99):>14.1f}  "
              + "  ".join(f"{m} {w:.1f}" for m, w in per.items()))
    print("\nreproduce: servelab demo "
          f"--workload {args.workload} --duration {args.duration:g} --seed {args.seed}")
    return 0


def _group(measured: list[Measured]) -> dict[str, list[Measured]]:
    out: dict[str, list[Measured]] = {}
    for m in measured:
        out.setdefault(m.request.model, []).append(m)
    return out
