"""Headline numbers and the one claim each measurement's figure supports (pure functions of
the frames :mod:`servelab.analysis.os_study` measures).

:func:`numbers` gives ``[(label, value, unit)]`` — what ``servelab os-study`` prints and
``summary.json`` keeps, each value in the unit it names (the frames hold seconds; a number
shows them in ms, us or ns); :func:`claim` gives the sentence, with those numbers, that a
report figure states.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

Number = tuple[str, float, str]

MS = 1e3
"""Seconds to the milliseconds a number or claim shows."""


def _med(df: pd.DataFrame, key: str, value: str, scale: float = 1.0) -> dict[str, float]:
    return {str(k): scale * float(v)
            for k, v in df.groupby(key, sort=False)[value].median().items()}


def _per(df: pd.DataFrame, key: str,
         cols: tuple[tuple[str, str, float, str], ...]) -> list[Number]:
    """Each ``(column, label, scale, unit)``'s median per ``key``, labelled ``"<key> <label>"``
    and shown as ``scale`` x the column (a column the frame lacks is left out)."""
    out: list[Number] = []
    for col, label, scale, unit in cols:
        if col not in df.columns:
            continue
        for k, v in _med(df, key, col, scale).items():
            out.append((f"{k} {label}", v, unit))
    return out


def _ctxsw(df: pd.DataFrame) -> list[Number]:
    return _per(df, "setup", (
        ("vcsw_per_req", "vcsw_per_req", 1.0, "switches/req"),
        ("ivcsw_per_req", "ivcsw_per_req", 1.0, "switches/req"),
        ("cpu_s_per_req", "cpu_ms_per_req", MS, "ms"),
        ("wall_s_per_req", "wall_ms_per_req", MS, "ms"),
        ("cpu_over_wall", "cpu_over_wall", 1.0, "cores"), ("ipc_s", "ipc_ms", MS, "ms"),
        ("queue_s", "queue_ms", MS, "ms"), ("compute_s", "compute_ms", MS, "ms")))


def _ipc(df: pd.DataFrame) -> list[Number]:
    from servelab.analysis.os_study.ipc import crossover, summarize

    s = summarize(df)
    out: list[Number] = [(f"{r.method} {int(r.bytes)} B one-way", 1e6 * float(r.median_s), "us")
                         for r in s.itertuples()]
    x = crossover(df)
    out.append(("shm beats pipe from", float(x) if x is not None else math.nan, "B"))
    return out


def _spawn(df: pd.DataFrame) -> list[Number]:
    return [(f"start {k}", 1e6 * v, "us") for k, v in _med(df, "kind", "seconds").items()]


def _pingpong(df: pd.DataFrame) -> list[Number]:
    return [(f"switch {k}", 1e6 * v, "us") for k, v in _med(df, "kind", "switch_s").items()]


def _memory(df: pd.DataFrame) -> list[Number]:
    out: list[Number] = []
    for (freeze, stage), g in df.groupby(["freeze", "stage"], sort=False):
        tag = "frozen" if freeze else "unfrozen"
        out.append((f"USS/worker {stage} ({tag})", float(g["uss_mb"].mean()), "MiB"))
        out.append((f"PSS/worker {stage} ({tag})", float(g["pss_mb"].mean()), "MiB"))
    out.append(("RSS per inference thread", float(df["thread_rss_mb"].iloc[0]), "MiB"))
    out.append(("model parameters", float(df["param_mb"].iloc[0]), "MiB"))
    return out


def _locks(df: pd.DataFrame) -> list[Number]:
    return _per(df, "mode", (
        ("lock_wait_mean_s", "lock_wait_mean_ms", MS, "ms"),
        ("lock_wait_p99_s", "lock_wait_p99_ms", MS, "ms"),
        ("waited_share", "waited_share", 1.0, "share"), ("p99_s", "p99_ms", MS, "ms")))


def _deadlock(df: pd.DataFrame) -> list[Number]:
    r = df.set_index("request")
    return [("deadlocked request answered after", float(r["seconds"].iloc[:2].max()), "s"),
            ("deadlocked request status", float(r["status"].iloc[0]), "HTTP"),
            ("next request (2 s deadline) status", float(r["status"].iloc[2]), "HTTP"),
            ("thread stacks logged", float(r["stacks_logged"].iloc[0]), "threads")]


def _gil(df: pd.DataFrame) -> list[Number]:
    two = df[df["workers"] == 2]
    return [(f"{v} {m} speedup at 2 workers", float(g["speedup"].median()), "x")
            for (v, m), g in two.groupby(["variant", "mode"], sort=False)]


def _sched(df: pd.DataFrame) -> list[Number]:
    out: list[Number] = []
    for pol, g in df.groupby("policy", sort=False):
        out.append((f"{pol} slow-class (distilbert) mean wait",
                    MS * float(g["wait_mean_distilbert"].median()), "ms"))
        out.append((f"{pol} slow-class max wait",
                    MS * float(g["wait_max_distilbert"].median()), "ms"))
        out.append((f"{pol} fast-class (mobilenet_v2) mean wait",
                    MS * float(g["wait_mean_mobilenet_v2"].median()), "ms"))
    return out


def _perf(df: pd.DataFrame) -> list[Number]:
    hw = df[df["kind"] == "hw"]
    out: list[Number] = [("hardware events supported", float(hw["supported"].sum()), "of "
                          f"{len(hw)}")]
    out += [(f"perf {r.event} (thread ping-pong)", float(r.value), "")
            for r in df[df["supported"]].itertuples()]
    return out


def _cache(df: pd.DataFrame) -> list[Number]:
    m = 1e9 * df.groupby("bytes")["s_per_read"].median()
    return [(f"random read, {int(b) >> 10} KiB working set", float(v), "ns")
            for b, v in m.items()]


def _affinity(df: pd.DataFrame) -> list[Number]:
    return _per(df, "condition", (
        ("throughput", "throughput", 1.0, "req/s"), ("p50_s", "p50_ms", MS, "ms"),
        ("p99_s", "p99_ms", MS, "ms"), ("ivcsw_per_req", "ivcsw_per_req", 1.0, "switches/req")))


NUMBERS: dict[str, Callable[[pd.DataFrame], list[Number]]] = {
    "ctxsw": _ctxsw, "ipc": _ipc, "spawn": _spawn, "pingpong": _pingpong, "memory": _memory,
    "locks": _locks, "deadlock": _deadlock, "gil": _gil, "sched": _sched, "perf": _perf,
    "cache": _cache, "affinity": _affinity,
}


def numbers(name: str, df: pd.DataFrame) -> list[Number]:
    return NUMBERS[name](df)


def _get(nums: list[Number], label: str) -> float:
    for k, v, _ in nums:
        if k == label:
            return v
    return math.nan


def _no_free_core(df: pd.DataFrame, process_speedup: float) -> str:
    """When two processes of a GIL-free kernel did not scale, no second core was free."""
    if not process_speedup < 1.3 or "run_load1_before" not in df.columns:
        return ""
    load = max(float(df["run_load1_before"].iloc[0]), float(df["run_load1_after"].iloc[0]))
    return ("; processes did not scale either: other jobs held the cores (load average "
            f"{load:.1f}), so this run cannot show what the GIL costs (see section 1)")


def _ipc_tail(df: pd.DataFrame) -> str:
    if "ipc_s" not in df.columns or "processes" not in set(df["setup"]):
        return ""
    ipc = _med(df, "setup", "ipc_s", MS)["processes"]
    return f"; a process worker's IPC round trip adds {ipc:.2f} ms per request"


def claim(name: str, df: pd.DataFrame) -> str:
    """The one claim the measurement's figure supports, with its numbers."""
    n = numbers(name, df)
    g = _get
    if name == "ctxsw":
        v = _med(df, "setup", "vcsw_per_req")
        cw = _med(df, "setup", "cpu_s_per_req", MS)
        lo, hi = min(v, key=v.__getitem__), max(v, key=v.__getitem__)
        return (f"Per request, {hi} makes the most voluntary context switches "
                f"({v[hi]:.1f}) and {lo} the fewest ({v[lo]:.1f}); CPU per request ranges "
                f"{min(cw.values()):.1f}-{max(cw.values()):.1f} ms "
                f"({', '.join(f'{k} {x:.1f}' for k, x in cw.items())}){_ipc_tail(df)}.")
    if name == "ipc":
        x = g(n, "shm beats pipe from")
        sizes = sorted(df["bytes"].unique())
        big = int(sizes[-1])
        return (f"For a {big >> 20} MiB payload the pipe takes "
                f"{g(n, f'pipe {big} B one-way') / 1000:.2f} ms one way, the Queue "
                f"{g(n, f'queue {big} B one-way') / 1000:.2f} ms and shared memory "
                f"{g(n, f'shm {big} B one-way') / 1000:.2f} ms; shared memory wins from "
                + (f"{int(x) >> 10} KiB" if x == x and x >= 1024 else f"{x:.0f} B" if x == x
                   else "no size measured") + f" (64 B: pipe "
                f"{g(n, 'pipe 64 B one-way'):.0f} us, shm {g(n, 'shm 64 B one-way'):.0f} us).")
    if name == "spawn":
        return (f"A thread starts and joins in {g(n, 'start thread'):.0f} us; os.fork of this "
                f"interpreter takes {g(n, 'start os.fork') / 1000:.1f} ms, a multiprocessing fork "
                f"{g(n, 'start mp-fork') / 1000:.1f} ms and a spawned interpreter "
                f"{g(n, 'start mp-spawn') / 1000:.0f} ms.")
    if name == "pingpong":
        return (f"A pipe ping-pong costs {g(n, 'switch thread'):.1f} us per switch between "
                f"two threads (GIL hand-off included) and {g(n, 'switch process'):.1f} us "
                "between two processes.")
    if name == "memory":
        return (f"A forked worker holds {g(n, 'USS/worker forked (unfrozen)'):.1f} MiB of its "
                f"own after fork and {g(n, 'USS/worker inferred (unfrozen)'):.1f} MiB after "
                "inferring (weights shared copy-on-write); one gc.collect() raises that to "
                f"{g(n, 'USS/worker collected (unfrozen)'):.0f} MiB, or "
                f"{g(n, 'USS/worker collected (frozen)'):.1f} MiB after gc.freeze(); writing "
                f"every weight: {g(n, 'USS/worker written (frozen)'):.1f} MiB "
                f"(parameters {g(n, 'model parameters'):.1f} MiB). An inference thread adds "
                f"{g(n, 'RSS per inference thread'):.1f} MiB RSS.")
    if name == "locks":
        return (f"Under --model-lock global {100 * g(n, 'global waited_share'):.0f}% of "
                f"requests wait for the lock (mean {g(n, 'global lock_wait_mean_ms'):.2f} ms, "
                f"p99 {g(n, 'global lock_wait_p99_ms'):.1f} ms) against "
                f"{100 * g(n, 'per-model waited_share'):.0f}% per-model (p99 "
                f"{g(n, 'per-model lock_wait_p99_ms'):.1f} ms); client p99 "
                f"{g(n, 'global p99_ms'):.0f} vs {g(n, 'per-model p99_ms'):.0f} ms.")
    if name == "deadlock":
        return (f"Two requests taking two locks in opposite order deadlock; the watchdog "
                f"answered both HTTP {g(n, 'deadlocked request status'):.0f} naming the locks "
                f"after {g(n, 'deadlocked request answered after'):.1f} s (--watchdog-s "
                f"{df['watchdog_s'].iloc[0]:g}) and logged {g(n, 'thread stacks logged'):.0f} "
                "thread stacks; both inference threads stay stuck, so the next request got "
                f"HTTP {g(n, 'next request (2 s deadline) status'):.0f} at its deadline.")
    if name == "gil":
        return (f"At 2 workers the C kernel that releases the GIL speeds up "
                f"{g(n, 'c-release threads speedup at 2 workers'):.2f}x with threads "
                f"({g(n, 'c-release processes speedup at 2 workers'):.2f}x with processes); "
                f"holding the GIL, threads get {g(n, 'c-hold threads speedup at 2 workers'):.2f}x"
                f" and processes {g(n, 'c-hold processes speedup at 2 workers'):.2f}x"
                + _no_free_core(df, g(n, "c-release processes speedup at 2 workers")) + ".")
    if name == "sched":
        return (f"At 90% load priority cuts the fast class's mean wait from "
                f"{g(n, 'fifo fast-class (mobilenet_v2) mean wait'):.0f} to "
                f"{g(n, 'priority fast-class (mobilenet_v2) mean wait'):.0f} ms but starves the "
                f"slow class: its longest wait grows from {g(n, 'fifo slow-class max wait'):.0f}"
                f" to {g(n, 'priority slow-class max wait'):.0f} ms (mean "
                f"{g(n, 'fifo slow-class (distilbert) mean wait'):.0f} -> "
                f"{g(n, 'priority slow-class (distilbert) mean wait'):.0f} ms; MLFQ "
                f"{g(n, 'mlfq slow-class max wait'):.0f} ms).")
    if name == "perf":
        hw = df[df["kind"] == "hw"]
        sw = df[(df["kind"] == "sw") & df["supported"]]
        if not hw["supported"].any():
            return (f"No hardware counter is available here (perf_event_paranoid="
                    f"{df['paranoid'].iloc[0]}; {', '.join(hw['event'])}: "
                    f"{hw['reason'].iloc[0] or 'not counted'}); only software events count: "
                    + ", ".join(f"{r.event} {r.value:.0f}" for r in sw.itertuples())
                    + " over a 2000-round thread ping-pong.")
        return "Hardware counters: " + ", ".join(
            f"{r.event} {r.value:.3g}" for r in df[df["supported"]].itertuples()) + "."
    if name == "cache":
        m = 1e9 * df.groupby("bytes")["s_per_read"].median()
        return (f"A random read costs {m.iloc[0]:.1f} ns within {int(m.index[0]) >> 10} KiB "
                f"and {m.iloc[-1]:.1f} ns over {int(m.index[-1]) >> 20} MiB "
                f"({m.iloc[-1] / m.iloc[0]:.1f}x): the working set leaving the caches.")
    if name == "affinity":
        t = _med(df, "condition", "p99_s", MS)
        m = _med(df, "condition", "p50_s", MS)
        thr = _med(df, "condition", "throughput")
        return ("Two workers at a fixed load: p50 "
                + ", ".join(f"{c} {m[c]:.0f} ms" for c in m) + "; p99 "
                + ", ".join(f"{c} {t[c]:.0f} ms" for c in t) + "; throughput "
                + ", ".join(f"{c} {thr[c]:.1f}/s" for c in thr) + ".")
    raise ValueError(f"unknown measurement {name!r}")


def spread(name: str, df: pd.DataFrame) -> str:
    """How the figure's spread is drawn."""
    reps = int(df["repeat"].nunique()) if "repeat" in df.columns else 0
    if name in ("ipc", "spawn", "pingpong"):
        n = int(df["sample"].nunique())
        return f"median with interquartile range over up to {n} samples"
    if name == "sched":
        return f"median and min-max over {df['seed'].nunique()} seeds"
    if name == "memory":
        diff = df.groupby(["freeze", "stage"])["uss_mb"].agg(lambda x: x.max() - x.min()).max()
        return (f"mean of {df['worker'].nunique()} workers (their USS differ by at most "
                f"{diff:.1f} MiB)")
    if name in ("deadlock", "perf"):
        return "one run"
    return f"median and min-max over {reps} repeat(s)" if reps else "one run"


