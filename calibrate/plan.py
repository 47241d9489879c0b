"""Which points a calibration measures: ``quick`` (a few minutes on 2 cores) or ``full``."""

from __future__ import annotations

from servelab.calibrate.runner import Point

MODELS = ("mobilenet_v2", "distilbert", "lstm_forecaster")
SIZES = {
    "mobilenet_v2": (32,),
    "distilbert": (16, 64, 128, 256, 512),
    "lstm_forecaster": (96, 192, 336, 720),
}
FULL_SIZES = {
    "mobilenet_v2": (32,),
    "distilbert": (8, 16, 32, 64, 96, 128, 192, 256, 384, 512),
    "lstm_forecaster": (96, 192, 336, 480, 720),
}
IPC_BYTES = (100, 10_000, 1_000_000)
FULL_IPC_BYTES = (100, 1_000, 10_000, 100_000, 1_000_000, 4_000_000)
STACKS = ("threads", "processes", "async")
LIVE_SETUPS = ("threads", "processes", "async-thread", "async-process", "async-inline")
"""Setups whose front end is measured live.  Async inline runs inference on the event loop's
own thread, so its run measures the loop's CPU per request (front end and inference together,
no convoy probes); the front end's share is async-thread's (the same uvicorn/FastAPI path) and
the rest is inline's in-server inference."""


KERNELS = ("c-release", "c-hold", "python")
"""The ffi kernels a full calibration measures (``servelab serve --kernel``; torch is the
models' own code, measured anyway)."""


def plan(
    quick: bool = True, cores: int = 2, models: tuple[str, ...] = MODELS, variant: str = "full",
    kernels: tuple[str, ...] | None = None,
) -> list[Point]:
    """The points of one calibration, cheapest first so a short run is already useful.
    ``kernels``: the ffi kernels whose costs are measured too (default: none for quick, all
    of :data:`KERNELS` for full)."""
    from servelab.core.config import KERNEL_MODELS, kernel_kind

    kernels = tuple(kernels if kernels is not None else (() if quick else KERNELS))
    # The machine's speed before and after everything else: the profile's reference for
    # rescaling it to the machine's speed at a later use (servelab.core.speed), and the
    # calibration's own drift.
    probe = {"models": list(models), "variant": variant}
    pts: list[Point] = [Point("speed", {**probe, "at": "start"}, 2, 5)]
    ipc = IPC_BYTES if quick else FULL_IPC_BYTES
    for method in ("pipe", "queue", "shm"):
        for b in ipc:
            pts.append(Point("ipc", {"method": method, "bytes": b}, 3, 20 if quick else 100))
    for kind in ("thread", "process"):
        pts.append(Point("ctxswitch", {"kind": kind, "rounds": 2000}, 1, 3 if quick else 10))
    pts.append(Point("perfstat", {"kind": "thread"}, 0, 1))
    pts.append(Point("eventloop", {}, 1, 3 if quick else 10))
    # The live stages: GIL co-run rates of every pair of kinds (the models and the front end's
    # own Python work), then each setup's real server driven by the real load generator.
    pts.append(Point("corun", {"kinds": [*models, "frontend"], "variant": variant,
                               "seconds": 1.0 if quick else 3.0,
                               "long_seconds": 1.5 if quick else 6.0}, 2, 1))
    pts.append(Point("warmth", {"models": list(models), "variant": variant}, 3,
                     12 if quick else 40))
    for setup in LIVE_SETUPS:
        inline = setup == "async-inline"
        # The convoy probe only where inference threads share the front end's interpreter
        # (calibrate.live reads it for those alone): not inline, not the process pools.
        convoy_probe = setup in ("threads", "async-thread")
        pts.append(Point("frontend", {"setup": setup, "models": list(models), "variant": variant,
                                      "seconds": (1.2 if inline else 1.5) if quick else 6.0,
                                      "probe_seconds": (0.8 if quick else 4.0) if convoy_probe
                                      else 0.0}, 1, 1))
    sizes = SIZES if quick else FULL_SIZES
    samples = 5 if quick else 20
    early: list[Point] = []
    late: list[Point] = []
    for m in models:
        v = {"model": m, "variant": variant}
        # Service time vs input size (batch 1), and batch scaling at the default size, with one
        # intra-op thread; then more intra-op threads, each count in its own process.
        batches = [4] if quick else [2, 4, 8]
        min_time = 0.5 if quick else 2.0  # seconds of samples per size, at least
        # Like pyperf, several worker processes per measurement: the run-to-run spread between
        # processes (allocator layout, core placement) is larger than the spread within one.
        # The first run at the start of the calibration, the others at its end: the
        # machine's speed moves over minutes (MobileNetV2 measured 4.7 ms by the start probe
        # and 7.9 ms by the service bench in one quick calibration), so the median spans it.
        for run in range(2 if quick else 3):
            (early if run == 0 else late).append(Point(
                "service", {**v, "sizes": list(sizes[m]), "batches": batches,
                            "min_time_s": min_time, "run": run}, 2, samples))
        for t in range(2, (2 if quick else max(cores, 2)) + 1):
            pts.append(Point("service", {**v, "threads": t, "min_time_s": min_time}, 2, samples))
        # Interference and GIL share: k concurrent requests, threads vs processes.
        # Each k > 1 point measures its own interleaved k = 1 baseline (the machine drifts
        # between points), so no separate k = 1 point: the table's first entry is 1.0.
        ks = sorted({2, cores} if quick else set(range(2, 2 * cores + 1)))
        per_worker = {"mobilenet_v2": 40, "distilbert": 3, "lstm_forecaster": 60}[m]
        if not quick:
            per_worker *= 3
        # Threads beside threads are the co-run stage's; processes keep their own curve.
        for mode in ("processes",):
            for k in ks:
                pts.append(Point("interference", {**v, "mode": mode, "k": k}, 2, per_worker))
        pts.append(Point("memory", {**v, "workers": 2}, 0, 1))
    # Each kernel: the service time of every model it changes (batch 1, one intra-op thread,
    # at the quick sizes) and the co-run rates of those models on it beside every kind a
    # server on that kernel runs in one interpreter (the pairs that involve them only).
    for kern in (k for k in kernels if k != "torch"):
        changed = [m for m in models if m in KERNEL_MODELS]
        for m in changed:
            pts.append(Point("service", {"model": m, "variant": variant, "kernel": kern,
                                         "sizes": list(SIZES[m]),
                                         "min_time_s": 0.5 if quick else 2.0},
                             2, samples))
        mine = [kernel_kind(m, kern) for m in changed]
        if mine:
            pts.append(Point("corun", {"kinds": [*mine, *[m for m in models if m not in changed],
                                                 "frontend"], "only_with": mine,
                                       "variant": variant, "seconds": 1.0 if quick else 3.0,
                                       "long_seconds": 1.5 if quick else 6.0}, 2, 1))
    if not quick:  # backend start-up per setup (the meta-scheduler's switching cost)
        pts.append(Point("switch", {"models": list(models), "variant": variant}, 1, 3))
    pts[1:1] = early  # right after the start probe
    pts += late
    pts.append(Point("speed", {**probe, "at": "end"}, 2, 5))
    return pts
