"""The machine's speed now, against the speed it had when it was calibrated.

A shared machine does not keep one speed: on this project's 2-core VMs the same MobileNetV2
inference took 4.2, 4.5 and 7.3 ms in three calibrations an hour apart (neighbours on the host,
not steal time), so a profile is a snapshot of one moment.  A *speed probe* is a short,
fixed measurement — each model's batch-1 inference at its default size, back to back, and a
pure-Python interpreter loop standing in for front-end work — taken during calibration and
again whenever the profile is used against the live machine.  The ratio of the two is the
machine's drift; :func:`rescale` applies it to a profile so the simulator predicts the
machine as it is, not as it was.

What is rescaled: every per-model CPU cost (pre/postprocess, forward, cold-start extras) by
that model's ratio; every CPU cost the servers' Python pays (front end, HTTP, event loop, IPC,
the load generator's own CPU) by the interpreter's ratio.  Ratios, GIL co-run rates, convoy
and wake-up delays are left alone: they are not CPU-seconds.  No torch here (core/ is
imported by the simulator); the probe itself is :mod:`servelab.calibrate.speed`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from servelab.core.profile import CostCurve, Profile, ProfileError

PYTHON = "python"
"""The interpreter loop's key among a probe's timings."""

LIMITS = (1 / 3, 3.0)
"""Ratios outside these are refused as a broken probe, not a slower machine."""


@dataclass(frozen=True)
class Speed:
    """One speed probe: median seconds per probe item (each model, and ``python``)."""

    seconds: Mapping[str, float] = field(default_factory=dict)
    at: str = ""

    def __post_init__(self) -> None:
        bad = {k: v for k, v in self.seconds.items() if not (v > 0 and math.isfinite(v))}
        if bad:
            raise ProfileError(f"speed probe: timings must be positive, got {bad}")

    def to_dict(self) -> dict[str, Any]:
        return {"seconds": dict(self.seconds), "at": self.at}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Speed:
        return cls({str(k): float(v) for k, v in data.get("seconds", {}).items()},
                   str(data.get("at", "")))

    @staticmethod
    def median(probes: Sequence[Speed]) -> Speed:
        """Item by item, the median over ``probes`` (items missing from some are taken from
        those that have them)."""
        keys = sorted({k for p in probes for k in p.seconds})
        return Speed({k: statistics.median(p.seconds[k] for p in probes if k in p.seconds)
                      for k in keys}, at=probes[-1].at if probes else "")

    def ratios(self, ref: Speed) -> dict[str, float]:
        """Per common item, this probe's time over ``ref``'s (> 1: the machine is slower now)."""
        out = {k: self.seconds[k] / ref.seconds[k] for k in self.seconds if k in ref.seconds}
        lo, hi = LIMITS
        bad = {k: round(r, 3) for k, r in out.items() if not lo <= r <= hi}
        if bad:
            raise ProfileError(f"speed probe ratios {bad} are outside [{lo:.2f}, {hi:.0f}]: "
                               "the probe, not the machine, is broken")
        return out


def drift(probes: Sequence[Speed]) -> float:
    """The largest spread (max / min - 1) of any item over ``probes``: how far the machine's
    speed moved while they were taken."""
    worst = 0.0
    for k in {k for p in probes for k in p.seconds}:
        v = [p.seconds[k] for p in probes if k in p.seconds]
        worst = max(worst, max(v) / min(v) - 1.0)
    return worst


def reference(profile: Profile) -> Speed | None:
    """The speed the profile was measured at (None: calibrated without a probe)."""
    d = profile.machine.extra.get("speed")
    return Speed.from_dict(d["ref"]) if d and "ref" in d else None


def _curve(c: CostCurve, f: float) -> CostCurve:
    return CostCurve(c.fixed_s * f, c.per_unit_s * f, tuple((s, t * f) for s, t in c.points))


def rescale(profile: Profile, factors: Mapping[str, float]) -> Profile:
    """``profile`` with its CPU costs multiplied by ``factors`` (per model, and ``python`` for
    the servers' and client's own Python work); items without a factor keep theirs."""
    models = {}
    for name, m in profile.models.items():
        f = factors.get(name, 1.0)
        models[name] = replace(m, preprocess=_curve(m.preprocess, f), forward=_curve(m.forward, f),
                               postprocess=_curve(m.postprocess, f),
                               cold=tuple((g, x * f) for g, x in m.cold))
    p = factors.get(PYTHON, 1.0)
    frontend = {k: replace(fe, cpu={m: _curve(c, p) for m, c in fe.cpu.items()})
                for k, fe in profile.frontend.items()}
    ev = profile.event_loop
    return replace(
        profile, models=models, frontend=frontend,
        http={k: replace(h, fixed_s=h.fixed_s * p, per_byte_s=h.per_byte_s * p)
              for k, h in profile.http.items()},
        event_loop=replace(ev, per_request_s=ev.per_request_s * p,
                           thread_handoff_s=ev.thread_handoff_s * p,
                           inline_block_s=ev.inline_block_s * p),
        ipc=replace(profile.ipc, fixed_s=profile.ipc.fixed_s * p,
                    per_byte_s=profile.ipc.per_byte_s * p),
        client=replace(profile.client,
                       cpu={m: _curve(c, p) for m, c in profile.client.cpu.items()}),
    )


def at_speed(profile: Profile, now: Speed) -> tuple[Profile, dict[str, float]]:
    """``profile`` rescaled to the machine's speed ``now`` (and the factors used); unchanged,
    with no factors, when the profile records no reference probe."""
    ref = reference(profile)
    if ref is None:
        return profile, {}
    factors = now.ratios(ref)
    return rescale(profile, factors), factors


__all__ = ["LIMITS", "PYTHON", "Speed", "at_speed", "drift", "reference",
           "rescale"]
