"""``servelab bench soak``: its verdict on synthetic records (each target met and missed),
and a 4-second soak of a tiny process pool with a worker killed and a SIGTERM drain."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from servelab.loadgen.cmd_bench_soak import add_arguments, run
from servelab.loadgen.soak_verdict import Capacity, Targets, Timeline, judge, windows
from servelab.reproduce import parse


def _records(n: int = 1000, rate: float = 100.0, latency: float = 0.02) -> pd.DataFrame:
    t = np.arange(n) / rate
    return pd.DataFrame({
        "intended_arrival": t, "enqueue": t, "end": t + latency, "latency": latency,
        "status": "ok", "http_status": 200, "error": pd.Series([None] * n, dtype="string")})


def _samples(growth: float = 0.0, end: float = 10.0) -> pd.DataFrame:
    t = np.arange(0.0, end, 1.0)
    rows = [{"t": x, "role": role, "pid": pid, "rss_mb": base * (1 + growth * x / end)}
            for x in t for role, pid, base in (("server", 1, 100.0), ("worker", 2, 400.0))]
    return pd.DataFrame(rows)


def _verdict(rec: pd.DataFrame, samples: pd.DataFrame, **timeline: float) -> dict:
    tl = Timeline(soak_end=timeline.pop("soak_end", 10.0), **timeline)  # type: ignore[arg-type]
    return judge(rec, samples, tl, Capacity(50.0, 0.020),
                 Targets(rss_baseline_s=2.0, rss_span_s=2.0))


def _row(v: dict, name: str) -> dict:
    return next(r for r in v["rows"] if r["target"] == name)


def test_a_clean_soak_meets_every_target():
    v = _verdict(_records(), _samples(), kill_at=5.0, replaced_s=0.003, exit_at=10.2,
                 exit_code=0)
    assert v["met"], v["rows"]
    assert abs(v["goodput_rps"] - 100.0) < 1e-9 and abs(v["ok_p99_s"] - 0.020) < 1e-9
    assert _row(v, "goodput")["margin"].startswith("ahead by 55.0 req/s")
    p99 = _row(v, "ok p99")  # seconds in data, ms in the printed table
    assert p99["measured"] == "20.0 ms (1.00x)" and "(40.0 ms)" in p99["goal"]
    assert "worker replaced in 3 ms" in _row(v, "no crash")["measured"]
    assert v["lost"] == {"total": 0, "at_kill": 0, "in_drain": 0}
    assert not v["overloaded"]  # ok at the offered rate: the capacity was an under-estimate


def test_each_target_missed_says_by_how_much():
    rec = _records(latency=0.05)  # p99 50 ms > 2 x 20 ms
    rec.loc[100:899, "status"] = "rejected"  # goodput 20 req/s < 45
    rec.loc[100:899, "http_status"] = 503
    rec.loc[500, ["status", "http_status", "error"]] = ["error", 0, "connection lost: reset"]
    rec.loc[501, ["status", "http_status", "error"]] = ["timeout", 0, "no response within 5s"]
    v = _verdict(rec, _samples(growth=0.2), kill_at=5.0, exit_code=1, exit_at=10.1)
    missed = {r["target"] for r in v["rows"] if not r["met"]}
    assert missed == {"goodput", "ok p99", "not ok = explicit 503", "no crash", "RSS growth",
                      "requests lost"}
    assert _row(v, "goodput")["margin"].startswith("short by 25.0 req/s")
    assert "1 connection failures, 1 client timeouts" in _row(v, "not ok = explicit 503")[
        "measured"]
    assert "not replaced" in _row(v, "no crash")["margin"]
    assert v["lost"] == {"total": 2, "at_kill": 2, "in_drain": 0} and v["overloaded"]


def test_a_port_closed_in_the_drain_is_refused_not_lost():
    rec = _records(n=1100)  # 11 s: the last second after the SIGTERM at 10 s
    rec.loc[1050:, ["status", "http_status", "error"]] = [
        "error", 0, "connect failed: [Errno 111] Connect call failed"]
    rec.loc[1040, ["status", "http_status", "error"]] = ["error", 0, "connection lost: reset"]
    v = _verdict(rec, _samples(end=11.0), exit_at=10.6, exit_code=0)
    assert v["lost"]["in_drain"] == 1 and v["drain"]["refused"] == 11
    assert v["after_exit"]["requests"] == 1100 - 1061
    win = windows(rec, _samples(end=11.0))
    assert len(win) == 11 and win["offered"].iloc[0] == 100 and win["failed"].iloc[10] == 51


def test_a_short_soak_kills_a_worker_and_drains(tmp_path):
    args = parse("bench soak", add_arguments, [
        "--variant", "tiny", "--duration-s", "3", "--tail-s", "0.5", "--capacity", "60",
        "--capacity-p99-ms", "50", "--rss-baseline-s", "1", "--no-progress",
        "--out", str(tmp_path)])
    assert run(args) == 0
    out = next(tmp_path.glob("bench-soak-*"))
    for name in ("records.parquet", "windows.parquet", "rss.parquet", "soak.png"):
        assert (out / name).stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    kinds = [e["kind"] for e in summary["events"]]
    assert kinds[:4] == ["kill", "replaced", "sigterm", "exit"], summary["events"]
    v = summary["verdict"]
    assert _row(v, "no crash")["met"], v["rows"]
    rec = pd.read_parquet(out / "records.parquet")
    assert len(rec) == v["soak_requests"] + v["drain"]["requests"] + v["after_exit"]["requests"]
    assert summary["command"].startswith("servelab bench soak --variant tiny")
    rss = pd.read_parquet(out / "rss.parquet")
    assert {"server", "zygote", "worker"} <= set(rss["role"])
