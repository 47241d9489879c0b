"""One line per switch, in OS terms: what changed in the workload, and why the new
configuration suits it better.

The line has two halves, ``"<what changed>: <why the new arm>"``:

* *what changed* is the workload feature that moved most between the window the old arm was
  chosen in and the window that triggered the switch (a model's share, the request rate, input
  sizes, the tail latency, CPU), e.g. "DistilBERT share rose to 50%" — scored so that a model's
  share rising by half outranks a rate change of up to 20x (the mix decides what is GIL-bound);
* *why* follows from how the two configurations differ (concurrency model, pool size,
  scheduler) and the facts this project measures: many small ops (MobileNetV2, the LSTM) hold
  the GIL, so threads stop scaling while processes do; big GEMMs (DistilBERT) release it, so
  threads keep up without the IPC copy; more workers shorten queues until the cores are
  oversubscribed; SJF / MLFQ stop short requests waiting behind long ones.

The bandit's own statistical reason (``policy.last_reason``) is kept next to it, not mixed in.
"""

from __future__ import annotations

import math

from servelab.core.config import ServerConfig
from servelab.gateway.windows import WindowStats

DISPLAY = {"mobilenet_v2": "MobileNetV2", "distilbert": "DistilBERT",
           "lstm_forecaster": "LSTM", "noop": "noop", "sleep": "sleep"}
GIL_BOUND = {"mobilenet_v2", "lstm_forecaster", "noop"}
"""Models of many small ops, each with Python overhead: threads serialise on the GIL."""


def _name(model: str) -> str:
    return DISPLAY.get(model, model)


def what_changed(before: WindowStats | None, after: WindowStats) -> str:
    """The workload change that stands out most (or the current state when nothing moved)."""
    candidates: list[tuple[float, str]] = []
    prev_mix = before.mix if before is not None else {}
    for m in set(prev_mix) | set(after.mix):
        a, b = prev_mix.get(m, 0.0), after.mix.get(m, 0.0)
        if abs(b - a) >= 0.1:
            verb = "rose" if b > a else "fell"
            # What rose explains more than what fell (weighted half); on ties a heavy
            # (GIL-releasing) model before a light one.
            score = abs(b - a) * (6 if b > a else 3) + 0.005 * (m not in GIL_BOUND)
            candidates.append((score, f"{_name(m)} share {verb} to {b:.0%}"))
    if before is not None and before.offered > 0 and after.offered > 0:
        r = after.offered / before.offered
        if r >= 1.5 or r <= 1 / 1.5:
            verb = "rose" if r > 1 else "fell"
            candidates.append((abs(math.log(r)), f"request rate {verb} from "
                               f"{before.offered:.0f} to {after.offered:.0f}/s"))
    if before is not None and math.isfinite(after.p99_s) and math.isfinite(before.p99_s) \
            and before.p99_s > 0 and after.p99_s / before.p99_s >= 2:
        candidates.append((math.log(after.p99_s / before.p99_s) * 0.8,
                           f"p99 rose to {after.p99_s * 1e3:.0f} ms"))
    if after.input_scale >= 1.5 or after.input_scale <= 1 / 1.5:
        verb = "grew" if after.input_scale > 1 else "shrank"
        candidates.append((abs(math.log(after.input_scale)), f"inputs {verb} "
                           f"{max(after.input_scale, 1 / after.input_scale):.1f}x"))
    if before is not None and abs(after.cpu - before.cpu) >= 0.25:
        candidates.append((abs(after.cpu - before.cpu), f"CPU at {after.cpu:.0%}"))
    if candidates:
        return max(candidates)[1]
    top = max(after.mix.items(), key=lambda kv: kv[1], default=("", 0.0))
    mix = f", {top[1]:.0%} {_name(top[0])}" if top[0] else ""
    return f"{after.offered:.0f} req/s{mix}"


def _dominant(after: WindowStats) -> str:
    return max(after.mix.items(), key=lambda kv: kv[1], default=("", 0.0))[0]


def why(old: ServerConfig, new: ServerConfig, after: WindowStats, cores: int) -> str:
    """Why ``new`` suits the workload of ``after`` better than ``old``, in OS terms."""
    top = _dominant(after)
    gil_bound = top in GIL_BOUND
    if old.concurrency != new.concurrency:
        if new.concurrency == "processes":
            if gil_bound:
                return (f"threads were GIL-bound at {old.workers} workers ({_name(top)}'s small "
                        f"ops hold the GIL), processes scale")
            return (f"{old.concurrency} share one interpreter lock at {old.workers} workers, "
                    f"{new.workers} worker processes run truly in parallel")
        if new.concurrency == "threads":
            if not gil_bound and top:
                return (f"{_name(top)}'s large GEMMs release the GIL, so {new.workers} threads "
                        f"scale like processes without the IPC copy")
            return (f"at {after.offered:.0f} req/s pickling and IPC cost more than the GIL "
                    f"contention threads add")
        return (f"an event loop accepts and parses requests without a thread per connection; "
                f"inference runs on {new.offload} offload ×{new.workers}")
    if old.workers != new.workers:
        if new.workers > old.workers:
            return (f"{new.workers} workers instead of {old.workers} keep the queue short at "
                    f"{after.offered:.0f} req/s")
        return (f"{new.workers} instead of {old.workers} workers: fewer runnable threads on "
                f"{cores} cores, less contention and context switching")
    if old.scheduler != new.scheduler:
        if after.mix and max(after.mix.values()) >= 0.95:
            order = "arrival order is as good as any" if new.scheduler == "fifo" else \
                f"{new.scheduler.upper()} orders like FIFO"
            return (f"with {_name(top)} alone every request costs about the same, so {order}; "
                    f"the in-place change costs nothing")
        return {
            "sjf": "SJF runs short requests first, so fast ones stop queuing behind slow ones",
            "mlfq": "MLFQ preempts long requests at stage boundaries, so short ones overtake",
            "priority": "priority classes put urgent requests ahead of the backlog",
            "fifo": "with one kind of request, FIFO's arrival order is fairest and cheapest",
        }.get(new.scheduler, f"scheduler {new.scheduler}")
    return "same server, other settings (batching, threads, locks)"


def explain(old: ServerConfig, new: ServerConfig, before: WindowStats | None,
            after: WindowStats, cores: int) -> str:
    """``"<what changed>: <why the new arm>"`` (see the module docstring)."""
    return f"{what_changed(before, after)}: {why(old, new, after, cores)}"
