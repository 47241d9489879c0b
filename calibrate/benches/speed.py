"""Speed probe: the machine's speed at this point of the calibration (see
:mod:`servelab.calibrate.speed`).  The plan takes one at the start and one at the end; the
profile records them and their median as the reference a later probe is compared with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from servelab.calibrate.speed import MIN_TIME_S, Prober


def measure(params: Mapping[str, Any], warmups: int, samples: int) -> dict[str, Any]:
    prober = Prober(params["models"], params.get("variant", "full"))
    min_time = float(params.get("min_time_s", MIN_TIME_S))
    # The first pass warms the process up; the second is the probe — the same condition as a
    # validation's long-lived probe process, whose first pass runs at its start.
    prober.measure(warmups, samples, min_time)
    speed = prober.measure(warmups, samples, min_time)
    return {"samples": list(speed.seconds.values()), "speed": speed.to_dict(),
            "at": params.get("at", "")}
