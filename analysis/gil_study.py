"""The study behind ``servelab gil-study``: thread vs process scaling of each kernel variant.

For each kernel variant (torch, c-release, c-hold, python), each operation (the
``lstm_forecaster`` forward pass, the ``mobilenet_v2`` image preprocessing) and each worker count
N (1, 2, 4, 8), the same loop -- call the kernel, count -- runs for a fixed time in N threads of
one process, then in N single-threaded processes.  Every point runs in fresh processes (spawned,
pyperf style: no thread-pool state leaks between points) with a warm-up before a common start.

Per point: calls and items per second, speedup over N = 1 of the same variant and mode, parallel
efficiency (speedup / N), CPU time / wall time (cores kept busy, from ``getrusage``: the process
with its threads, or the sum over the worker processes), voluntary and involuntary context
switches.  Results: ``results/<run-id>/gil_study.parquet``, ``summary.json``, ``gil_study.png``.

The C kernel in its GIL-releasing build should scale with threads up to the core count like
processes do; the GIL-holding build of the same C code should not scale with threads at all.
"""

from __future__ import annotations

import logging
import os
import queue as queue_mod
import resource
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from servelab.ffi.kernels import KERNELS

log = logging.getLogger(__name__)

OPS = ("lstm", "preprocess")
MODES = ("threads", "processes")
SETUP_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class StudyConfig:
    variants: tuple[str, ...] = KERNELS
    ops: tuple[str, ...] = ("lstm",)
    workers: tuple[int, ...] = (1, 2, 4, 8)
    modes: tuple[str, ...] = MODES
    duration_s: float = 2.0
    warmup_s: float = 0.3
    lookback: int = 96
    batch: int = 1
    images: int = 64
    model_variant: str = "full"
    seed: int = 0
    repeat: int = 1


@dataclass(frozen=True)
class WorkerSpec:
    """What one worker process runs (picklable: sent to spawned processes)."""

    variant: str
    op: str
    threads: int
    duration_s: float
    warmup_s: float
    lookback: int
    batch: int
    images: int
    model_variant: str
    seed: int
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())
    weights: Any = None
    """Packed LSTM weights for the non-torch variants (spares those workers a torch import)."""


def _make_op(spec: WorkerSpec) -> tuple[Any, int]:
    """The callable one worker loops on, and the items (requests) one call serves."""
    from servelab.ffi.kernels import get_kernels

    if spec.variant == "torch":
        import torch

        torch.set_num_threads(1)
    kernels = get_kernels(spec.variant)
    rng = np.random.default_rng(spec.seed)
    if spec.op == "lstm":
        weights = spec.weights
        if weights is None or (spec.variant == "torch" and weights.module is None):
            weights = _lstm_weights(spec.model_variant, spec.seed)
        windows = rng.standard_normal((spec.batch, spec.lookback, weights.input_size))
        windows = windows.astype(np.float32)
        return (lambda: kernels.lstm_forward(weights, windows)), spec.batch
    if spec.op == "preprocess":
        images = rng.integers(0, 256, size=(spec.images, 32, 32, 3), dtype=np.uint8)
        mean, std = np.array(spec.mean, np.float32), np.array(spec.std, np.float32)
        return (lambda: kernels.preprocess_images(images, mean, std)), spec.images
    raise ValueError(f"unknown op {spec.op!r}; valid: {', '.join(OPS)}")


def _lstm_weights(model_variant: str, seed: int) -> Any:
    from servelab.ffi.kernels import LstmWeights
    from servelab.servers.zoo import get_model

    return LstmWeights.from_module(
        get_model("lstm_forecaster", variant=model_variant, seed=seed).load()
    )


def _system_busy_s() -> float:
    """CPU-seconds all CPUs of the machine have spent busy since boot (/proc/stat), NaN where
    unavailable: the difference over a point, minus our own CPU time, is what other jobs used."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _usage() -> tuple[float, int, int]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime, ru.ru_nvcsw, ru.ru_nivcsw


def _worker(spec: WorkerSpec, start: Any, results: Any) -> None:
    """One worker process: set up, warm up, wait for the common start, run ``spec.threads``
    threads for ``spec.duration_s``, report counts and resource usage."""
    from servelab.ffi.kernels import get_kernels

    try:
        op, items = _make_op(spec)
        end_warmup = time.monotonic() + spec.warmup_s
        while True:  # at least one call: first-call costs stay out of the measurement
            op()
            if time.monotonic() >= end_warmup:
                break
        counts = [0] * spec.threads
        ends = [0.0] * spec.threads
        deadline = [0.0]
        go = threading.Barrier(spec.threads + 1)

        def loop(i: int) -> None:
            go.wait()
            n, stop = 0, deadline[0]
            while time.monotonic() < stop:
                op()
                n += 1
            counts[i] = n
            ends[i] = time.monotonic()

        threads = [threading.Thread(target=loop, args=(i,), daemon=True)
                   for i in range(spec.threads)]
        for t in threads:
            t.start()
        start.wait(timeout=SETUP_TIMEOUT_S)
        cpu0, vol0, invol0 = _usage()
        sys0 = _system_busy_s()
        t0 = time.monotonic()
        deadline[0] = t0 + spec.duration_s
        go.wait()
        for t in threads:
            t.join()
        t1 = time.monotonic()
        cpu1, vol1, invol1 = _usage()
        sys1 = _system_busy_s()
        results.put({
            "ok": True, "pid": os.getpid(), "calls": sum(counts), "items_per_call": items,
            "t0": t0, "t1": max([t1, *ends]), "cpu_s": cpu1 - cpu0,
            "sys_busy0": sys0, "sys_busy1": sys1,
            "vol_ctx": vol1 - vol0, "invol_ctx": invol1 - invol0,
            "kernel_actual": get_kernels(spec.variant).name,
        })
    except BaseException as exc:  # report, so the parent does not wait for a dead worker
        results.put({"ok": False, "pid": os.getpid(), "error": f"{type(exc).__name__}: {exc}"})
        try:
            start.abort()
        except Exception:
            pass


def run_study_point(spec: WorkerSpec, processes: int) -> dict[str, Any]:
    """Run ``processes`` spawned workers of ``spec.threads`` threads each; aggregate."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    start = ctx.Barrier(processes)
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(spec, start, results), daemon=True)
             for _ in range(processes)]
    for p in procs:
        p.start()
    got: list[dict[str, Any]] = []
    try:
        for _ in procs:
            got.append(results.get(timeout=SETUP_TIMEOUT_S + spec.duration_s * 4))
    except queue_mod.Empty:
        raise RuntimeError(f"gil-study: workers did not report in time ({spec})") from None
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
    errors = [g["error"] for g in got if not g["ok"]]
    if errors:
        raise RuntimeError(f"gil-study worker failed: {errors[0]}")
    wall = max(g["t1"] for g in got) - min(g["t0"] for g in got)
    calls = sum(g["calls"] for g in got)
    cpu = sum(g["cpu_s"] for g in got)
    first = min(got, key=lambda g: g["t0"])
    last = max(got, key=lambda g: g["t1"])
    others = max(0.0, (last["sys_busy1"] - first["sys_busy0"] - cpu) / wall)
    return {
        "kernel_actual": got[0]["kernel_actual"],
        "calls": calls,
        "wall_s": wall,
        "cpu_s": cpu,
        "calls_per_s": calls / wall,
        "items_per_s": calls * got[0]["items_per_call"] / wall,
        "cpu_per_wall": cpu / wall,
        "cpu_s_per_call": cpu / max(calls, 1),
        "vol_ctx": sum(g["vol_ctx"] for g in got),
        "invol_ctx": sum(g["invol_ctx"] for g in got),
        "others_cores": others,
    }


def run_study(cfg: StudyConfig, progress: Any = None) -> Any:
    """Run every point of ``cfg``; returns a DataFrame with one row per point."""
    import pandas as pd

    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    if "preprocess" in cfg.ops:
        from servelab.servers.zoo.mobilenet import CIFAR10_MEAN, CIFAR10_STD

        mean, std = tuple(CIFAR10_MEAN), tuple(CIFAR10_STD)
    weights = None
    if "lstm" in cfg.ops:
        weights = _lstm_weights(cfg.model_variant, cfg.seed).without_module()
    rows = []
    # Threads and processes of the same N run back to back: on a shared machine they then see
    # about the same background load.
    points = [(r, op, v, mode, n) for r in range(cfg.repeat) for op in cfg.ops
              for v in cfg.variants for n in cfg.workers for mode in cfg.modes]
    for i, (rep, op, variant, mode, n) in enumerate(points):
        spec = WorkerSpec(
            variant=variant, op=op, threads=n if mode == "threads" else 1,
            duration_s=cfg.duration_s, warmup_s=cfg.warmup_s, lookback=cfg.lookback,
            batch=cfg.batch, images=cfg.images, model_variant=cfg.model_variant, seed=cfg.seed,
            mean=mean, std=std, weights=None if variant == "torch" else weights,
        )
        load_before = os.getloadavg()[0]
        res = run_study_point(spec, processes=1 if mode == "threads" else n)
        row = {"repeat": rep, "op": op, "variant": variant, "mode": mode, "workers": n,
               **res, "loadavg_1m_before": load_before}
        rows.append(row)
        if progress is not None:
            progress(i + 1, len(points), row)
    df = pd.DataFrame(rows)
    return add_derived(df)


def add_derived(df: Any) -> Any:
    """Speedup over 1 worker (same op, variant, mode, repeat) and efficiency = speedup / N."""
    base = df[df.workers == 1].set_index(["repeat", "op", "variant", "mode"])["calls_per_s"]
    key = list(zip(df.repeat, df.op, df.variant, df["mode"], strict=True))
    df = df.copy()
    df["speedup"] = [
        r / base.get(k, np.nan) for r, k in zip(df.calls_per_s, key, strict=True)
    ]
    df["efficiency"] = df.speedup / df.workers
    return df


def summary_table(df: Any) -> Any:
    """Median over repeats, one row per (op, variant, workers), threads and processes side by
    side."""
    cols = ["calls_per_s", "speedup", "efficiency", "cpu_per_wall", "vol_ctx", "invol_ctx",
            "others_cores"]
    med = df.groupby(["op", "variant", "mode", "workers"], sort=False)[cols].median()
    wide = med.unstack("mode")
    wide.columns = [f"{m[:4]}_{c}" for c, m in wide.columns]
    order = [f"{m[:4]}_{c}" for m in ("threads", "processes") for c in cols
             if f"{m[:4]}_{c}" in wide.columns]
    return wide[order].reset_index()


def format_table(df: Any) -> str:
    """A compact fixed-width table: per variant and N, threads vs processes."""
    tab = summary_table(df)
    head = (f"{'op':<10} {'variant':<10} {'N':>2} | {'thr calls/s':>11} {'speedup':>7} "
            f"{'eff':>5} {'cpu/wall':>8} {'vcsw':>7} {'ivcsw':>6} | {'proc calls/s':>12} "
            f"{'speedup':>7} {'eff':>5} {'cpu/wall':>8} {'vcsw':>7} {'ivcsw':>6} | {'others':>6}")
    lines = [head, "-" * len(head)]

    def cell(row: Any, mode: str) -> str:
        p = mode[:4]
        if f"{p}_calls_per_s" not in row or np.isnan(row[f"{p}_calls_per_s"]):
            width = 12 if mode == "processes" else 11
            return f"{'-':>{width}} {'':>7} {'':>5} {'':>8} {'':>7} {'':>6}"
        width = 12 if mode == "processes" else 11
        return (f"{row[f'{p}_calls_per_s']:>{width}.1f} {row[f'{p}_speedup']:>7.2f} "
                f"{row[f'{p}_efficiency']:>5.2f} {row[f'{p}_cpu_per_wall']:>8.2f} "
                f"{row[f'{p}_vol_ctx']:>7.0f} {row[f'{p}_invol_ctx']:>6.0f}")

    for _, row in tab.iterrows():
        others = np.nanmean([row.get(f"{m[:4]}_others_cores", np.nan) for m in MODES])
        lines.append(f"{row['op']:<10} {row['variant']:<10} {row['workers']:>2} | "
                     f"{cell(row, 'threads')} | {cell(row, 'processes')} | {others:>6.2f}")
    return "\n".join(lines)


def plot(df: Any, path: Any, machine: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ops = list(dict.fromkeys(df.op))
    fig, axes = plt.subplots(len(ops), 2, figsize=(11, 4 * len(ops)), squeeze=False)
    colors = dict(zip(KERNELS, ["tab:blue", "tab:green", "tab:red", "tab:orange"], strict=True))
    med = df.groupby(["op", "variant", "mode", "workers"], sort=False)[
        ["calls_per_s", "cpu_per_wall"]].median().reset_index()
    for r, op in enumerate(ops):
        for variant in dict.fromkeys(df.variant):
            for mode, style in (("threads", "-o"), ("processes", "--s")):
                d = med[(med.op == op) & (med.variant == variant) & (med["mode"] == mode)]
                if d.empty:
                    continue
                d = d.sort_values("workers")
                kw = {"color": colors.get(variant), "label": f"{variant} {mode}"}
                axes[r][0].plot(d.workers, d.calls_per_s, style, **kw)
                axes[r][1].plot(d.workers, d.cpu_per_wall, style, **kw)
        for ax, ylabel in ((axes[r][0], "calls / s"), (axes[r][1], "CPU time / wall time")):
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted(set(df.workers)), [str(w) for w in sorted(set(df.workers))])
            ax.set_xlabel("workers (threads in one process, or processes)")
            ax.set_ylabel(ylabel)
            ax.axvline(machine["cores"], color="grey", lw=0.8, ls=":")
            ax.grid(alpha=0.3)
        axes[r][0].set_title(f"{op}: throughput")
        axes[r][1].set_title(f"{op}: cores busy")
    axes[0][0].legend(fontsize=8, ncol=2)
    fig.suptitle(f"GIL study on {machine['cores']} usable CPUs ({machine['cpu_model']}); "
                 "dotted line = core count", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
