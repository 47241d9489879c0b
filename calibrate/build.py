"""Raw calibration results -> the profile the simulator reads, plus a long table of samples.

Every fitted number names its method here; anything not measured stays out of the profile
(and is listed in ``notes``) rather than being invented.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from servelab.calibrate.fit import gil_share, linear_fit, summarize
from servelab.calibrate.live import cold_curves, frontend_costs, gil_from_corun
from servelab.core.profile import (
    CostCurve,
    EventLoopCost,
    HttpCost,
    Interference,
    IpcCost,
    MachineInfo,
    MemoryCost,
    ModelProfile,
    Profile,
)

Result = Mapping[str, Any]


def samples_table(results: Sequence[Result]) -> pd.DataFrame:
    """Every raw sample in long form: point id, bench, params (JSON), metric, index, value."""
    rows: list[dict[str, Any]] = []
    for r in results:
        params = json.dumps(r.get("params", {}), sort_keys=True)
        base = {"point_id": r["id"], "bench": r["bench"], "params": params}
        for i, v in enumerate(r.get("samples", [])):
            rows.append({**base, "metric": "sample", "index": i, "value": float(v)})
        for i, row in enumerate(r.get("rows", [])):
            for k in ("preprocess", "forward", "postprocess", "total"):
                rows.append({**base, "metric": f"{k}@{row['input_size']}x{row['batch']}",
                             "index": i, "value": float(row[k])})
    return pd.DataFrame(rows, columns=["point_id", "bench", "params", "metric", "index", "value"])


def _by_bench(results: Sequence[Result]) -> dict[str, list[Result]]:
    out: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        out[r["bench"]].append(r)
    return out


def kind_of(params: Mapping[str, Any]) -> str:
    """The profile entry a service point measures: its model, on its kernel if not torch."""
    from servelab.core.config import kernel_kind

    return kernel_kind(str(params.get("model")), str(params.get("kernel", "torch")))


def _service_rows(results: Sequence[Result], kind: str) -> pd.DataFrame:
    rows = [row for r in results if kind_of(r["params"]) == kind for row in r["rows"]]
    return pd.DataFrame(rows)


def _curve(df: pd.DataFrame, column: str) -> CostCurve:
    med = df.groupby("input_size")[column].median()
    if len(med) == 1:
        return CostCurve(fixed_s=float(med.iloc[0]))
    fit = linear_fit(med.index.to_numpy(), med.to_numpy())
    return CostCurve(
        fixed_s=fit.fixed, points=tuple((float(s), float(v)) for s, v in med.items())
    )


def _model_profile(
    name: str, service: Sequence[Result], interference: Sequence[Result],
    memory: Sequence[Result], cores: int, notes: list[str],
) -> tuple[ModelProfile, dict[str, Any]]:
    df = _service_rows(service, name)
    base = df[(df["batch"] == 1) & (df["threads"] == 1)]
    pre, fwd, post = (_curve(base, c) for c in ("preprocess", "forward", "postprocess"))
    cvs = base.groupby("input_size")["total"].agg(lambda x: x.std(ddof=1) / x.mean())
    stages = int(next(r["stages"] for r in service if kind_of(r["params"]) == name))
    info: dict[str, Any] = {}
    # Batch scaling: forward(batch b) / forward(batch 1 at that size) = b ** exponent.
    exps = []
    for b, g in df[(df["batch"] > 1) & (df["threads"] == 1)].groupby("batch"):
        for size, gs in g.groupby("input_size"):
            exps.append(math.log(gs["forward"].median() / fwd(size)) / math.log(b))
    batch_exponent = float(np.clip(np.mean(exps), 0.0, 2.0)) if exps else 1.0
    if not exps and "+" not in name:  # (a model on a kernel takes its torch model's)
        notes.append(f"{name}: batch scaling not measured (exponent 1 assumed)")
    # Intra-op threads: forward(1 thread) / forward(t threads) at the same size.
    speedups = [1.0]
    for t, g in sorted(df[(df["batch"] == 1) & (df["threads"] > 1)].groupby("threads")):
        size = g["input_size"].iloc[0]
        speedups.append(float(fwd(size) / g["forward"].median()))
    # GIL share from thread-vs-process throughput scaling at k = cores.
    thr = {(r["params"]["mode"], r["params"]["k"]): r["throughput"] for r in interference
           if r["params"].get("model") == name}
    k = max((kk for (_, kk) in thr if kk <= cores), default=1)
    g = float("nan")
    if k > 1 and all((m, kk) in thr for m in ("threads", "processes") for kk in (1, k)):
        s_t = thr[("threads", k)] / thr[("threads", 1)]
        s_p = thr[("processes", k)] / thr[("processes", 1)]
        g = gil_share(s_t, s_p, k, cores)
        info["gil"] = {"k": k, "speedup_threads": s_t, "speedup_processes": s_p, "share": g}
    if math.isnan(g):  # the co-run fit (build_profile) sets it when measured
        g = 0.0
    mem = [r for r in memory if r["params"].get("model") == name]
    nbytes = base.groupby("input_size")[["input_bytes", "output_bytes"]].median()
    in_fit = linear_fit(nbytes.index.to_numpy(), nbytes["input_bytes"].to_numpy())
    mp = ModelProfile(
        preprocess=pre, forward=fwd, postprocess=post, stages=stages,
        batch_exponent=batch_exponent, intra_op_speedup=tuple(speedups),
        dist="lognormal", cv=float(np.nanmedian(cvs)) if len(cvs) else 0.0, gil_share=g,
        input_bytes_fixed=in_fit.fixed, input_bytes_per_unit=in_fit.per_unit,
        output_bytes=float(nbytes["output_bytes"].median()),
        memory_mb=float(np.median([r["model_mb"] for r in mem])) if mem else 0.0,
    )
    return mp, info


def _interference(results: Sequence[Result], gil: Mapping[str, float], cores: int) -> Interference:
    """Slowdown per active compute thread, after removing what the simulator models itself:
    time-sharing of the cores (k > cores) and, for threads, the fluid GIL serialisation."""
    tables: dict[str, dict[int, list[float]]] = {"threads": defaultdict(list),
                                                 "processes": defaultdict(list)}
    by_model: dict[str, dict[tuple[str, int], float]] = defaultdict(dict)
    own: dict[tuple[str, str, int], float] = {}  # interleaved ratios (the point's own baseline)
    for r in results:
        key = (r["params"]["mode"], r["params"]["k"])
        by_model[r["params"]["model"]][key] = float(np.median(r["samples"]))
        if "ratio" in r:
            own[(r["params"]["model"], *key)] = float(r["ratio"])
    for model, t in by_model.items():
        for (mode, k), v in t.items():
            if (model, mode, k) in own:
                ratio = own[(model, mode, k)]
            elif (mode, 1) in t:
                ratio = v / t[(mode, 1)]
            else:
                continue
            expected = max(1.0, k / cores)
            if mode == "threads":
                n = min(k, cores)
                g = gil.get(model, 0.0)
                expected = k / (1.0 / (g + (1.0 - g) / n)) if n > 1 else float(k)
            tables[mode][k].append(ratio / expected)
    out: dict[str, tuple[float, ...]] = {}
    for mode, tab in tables.items():
        if not tab:
            out[mode] = (1.0,)
            continue
        ks = range(1, max(tab) + 1)
        vals, last = [], 1.0
        for k in ks:
            last = float(np.median(tab[k])) if tab.get(k) else last
            vals.append(max(last, 1e-3))
        out[mode] = tuple(vals)
    return Interference(threads=out["threads"], processes=out["processes"])


DRIFT_WARN = 0.15
"""A calibration whose speed probes differ by more than this says so in its notes."""


def speed_reference(results: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The profile's speed reference from the calibration's probes: each probe, their median
    (``ref``, what a later probe is compared with) and how far they differ (``drift``)."""
    from servelab.core.speed import Speed, drift

    rows = [r for r in results if r.get("speed")]
    probes = [Speed.from_dict(r["speed"]) for r in rows]
    if not probes:
        return None
    return {"probes": [{**p.to_dict(), "stage": r.get("at", "")}
                       for p, r in zip(probes, rows, strict=True)],
            "ref": Speed.median(probes).to_dict(), "drift": drift(probes),
            "variant": str(rows[0]["params"].get("variant", "full"))}


def build_profile(
    results: Sequence[Result], meta: Mapping[str, Any], source: str
) -> tuple[Profile, dict[str, Any]]:
    """The profile and a summary of the fits (what ``calibrate show`` prints beyond it)."""
    b = _by_bench(results)
    cores = int(meta["cores"])
    notes: list[str] = []
    summary: dict[str, Any] = {}
    models, gil = {}, {}
    for name in sorted({kind_of(r["params"]) for r in b.get("service", [])}):
        mp, info = _model_profile(
            name, b["service"], b.get("interference", []), b.get("memory", []), cores, notes
        )
        models[name] = mp
        gil[name] = mp.gil_share
        summary[name] = info
    gil_cost, shares = gil_from_corun(b.get("corun", []), cores)
    for name, g in shares.items():
        if name in models:
            models[name] = replace(models[name], gil_share=float(g))
            gil[name] = float(g)
    for name, cold in cold_curves(b.get("warmth", [])).items():
        if name in models:
            models[name] = replace(models[name], cold=cold)
    for name in [n for n in models if "+" in n]:  # a model on a kernel: the same weights
        base = models.get(name.partition("+")[0])
        if base is not None:
            models[name] = replace(models[name], cold=base.cold, memory_mb=base.memory_mb,
                                   batch_exponent=base.batch_exponent,
                                   intra_op_speedup=base.intra_op_speedup,
                                   **({} if name in shares else {"gil_share": base.gil_share}))
    frontend, client = frontend_costs(b.get("frontend", []), gil_cost, notes, models)
    interference = _interference(b.get("interference", []), gil, cores)
    ipc = IpcCost()
    ipc_methods = {}
    for method in ("pipe", "queue", "shm"):
        pts = [r for r in b.get("ipc", []) if r["method"] == method]
        if pts:
            fit = linear_fit([r["bytes"] for r in pts], [float(np.median(r["samples"])) for r in pts])
            ipc_methods[method] = fit.to_dict()
    if "pipe" in ipc_methods:
        ipc = IpcCost(fixed_s=ipc_methods["pipe"]["fixed"], per_byte_s=ipc_methods["pipe"]["per_unit"])
    else:
        notes.append("IPC not measured")
    extra: dict[str, Any] = {"ipc_methods": ipc_methods}
    cs = {r["kind"]: float(np.median(r["samples"])) for r in b.get("ctxswitch", [])}
    if cs:
        extra["context_switch_s"] = cs
    for r in b.get("switch", []):  # backend start-up per setup: the meta-scheduler's cost
        from servelab.calibrate.benches.switch import start_times

        extra["switch_start_s"] = start_times(r)
    speed = speed_reference(b.get("speed", []))
    if speed:
        extra["speed"] = speed
        summary["speed"] = {k: v for k, v in speed.items() if k != "probes"}
        if speed["drift"] > DRIFT_WARN:
            notes.append(f"the machine's speed moved {speed['drift']:.0%} during the "
                         "calibration (speed probes at its start and end): its figures mix "
                         "two speeds; calibrate again on a quieter machine")
    for r in b.get("perfstat", []):
        extra["perf_stat"] = {k: r.get(k) for k in ("available", "reason", "counters") if k in r}
    ev = EventLoopCost()
    if b.get("eventloop"):
        r = b["eventloop"][0]
        ev = EventLoopCost(
            per_request_s=float(np.median(r["per_request"])),
            thread_handoff_s=float(np.median(r["handoff"])),
            inline_block_s=float(np.median(r["inline_block"])),
        )
    else:
        notes.append("event-loop costs not measured")
    http = {}
    for r in b.get("http", []):
        if r.get("available", True) and r.get("samples"):
            http[r["params"]["stack"]] = HttpCost(
                fixed_s=float(np.median(r["samples"])), per_byte_s=float(r.get("per_byte_s", 0.0)),
                gil_share=1.0,
            )
        else:
            notes.append(f"HTTP overhead of {r['params']['stack']} not measured: {r.get('reason')}")
    mem_p = mem_t = b.get("memory", [])
    memory = MemoryCost(
        server_base_mb=float(np.median([r["base_mb"] for r in mem_p])) if mem_p else 0.0,
        process_base_mb=float(np.median([x for r in mem_p for x in r["uss_mb"]])) if mem_p else 0.0,
        thread_mb=float(np.median([r["thread_mb"] for r in mem_t])) if mem_t else 0.0,
    )
    if not mem_p:
        notes.append("memory not measured")
    summary["memory"] = {r["params"]["model"]: {"uss_mb": r["uss_mb"], "pss_mb": r["pss_mb"],
                                                "model_mb": r["model_mb"]} for r in mem_p}
    machine = MachineInfo(
        cpu_model=meta["cpu_model"], cores=cores, memory_bytes=int(meta["memory_bytes"]),
        kernel=meta["kernel"], python=meta["python"], torch=meta.get("torch"),
        thread_settings={"torch_num_threads": 1, **meta.get("env_threads", {})},
        date=meta["date"], hostname=meta["hostname"], source=source, extra=extra,
    )
    profile = Profile(
        machine=machine, models=models, interference=interference, ipc=ipc, http=http,
        event_loop=ev, memory=memory, gil=gil_cost, frontend=frontend, client=client,
        notes="; ".join(notes),
    )
    summary["service"] = {
        name: {str(s): summarize(g["total"].to_numpy())
               for s, g in _service_rows(b["service"], name).query("batch == 1 and threads == 1")
               .groupby("input_size")}
        for name in models
    }
    return profile, summary
