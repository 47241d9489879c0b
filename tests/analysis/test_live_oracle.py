"""The live oracle's figures on hand-made window frames (the simulator's definitions)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from servelab.analysis.live_oracle import format_scores, live_scores, serving_arms


def frame(values: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"t0": np.arange(len(values), dtype=float), "norm": values})


# Two phases of 10 one-second windows; arm 0 is best in the first, arm 1 in the second.
STATICS = {0: frame([1.0] * 10 + [0.4] * 10), 1: frame([0.5] * 10 + [1.0] * 10)}


def test_a_switch_two_seconds_after_the_shift_adapts_in_two_seconds() -> None:
    adaptive = frame([1.0] * 10 + [0.4, 0.4] + [1.0] * 8)
    switches = [{"t_client": 12.0, "to": 1, "kind": "new"}]
    s = live_scores(adaptive, STATICS, switches, first_arm=0, phase_starts=[0.0, 10.0],
                    window_s=1.0)
    assert s["oracle_arms"] == [0, 1]
    assert s["adaptation_s"] == [0.0, 2.0] and s["adaptation_after_shifts_s"] == [2.0]
    assert s["oracle_share"] == pytest.approx(18.8 / 20.0)
    assert s["best_static_arm"] == 1  # 15 vs 14
    assert s["best_static_share"] == pytest.approx(18.8 / 15.0)
    text = format_scores(s, ["threads", "processes"])
    assert "94%" in text and "2.0 s" in text and "met" in text


def test_never_switching_never_adapts_and_failed_switches_do_not_serve() -> None:
    adaptive = frame([1.0] * 10 + [0.4] * 10)
    switches = [{"t_client": 11.0, "to": 1, "kind": "failed"}]
    s = live_scores(adaptive, STATICS, switches, 0, [0.0, 10.0], 1.0, warmup_s=2.0)
    assert s["adaptation_after_shifts_s"] == [None] and s["windows"] == 18
    assert "never" in format_scores(s, ["a", "b"]) and "missed" in format_scores(s, ["a", "b"])
    assert list(serving_arms(switches, 0, np.array([5.0, 15.0]))) == [0, 0]
