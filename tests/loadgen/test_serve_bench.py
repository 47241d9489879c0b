"""``servelab bench serve``'s measurement path — loadgen's sender, closed-loop driver and the
capacity ladder — against the stub server: a stub that holds at most 10 answers of 20 ms at
once and refuses the rest sustains about 220 req/s at <= 1 % refusals (Erlang B)."""

from __future__ import annotations

import argparse

from servelab.loadgen.cmd_bench_serve import add_arguments, format_peers
from servelab.loadgen.serve_bench import ladder, one_at_a_time
from servelab.reproduce import parse


class _Stub:
    label = "stub"

    def __init__(self, url: str):
        self.url = url

    def wait_idle(self) -> None:
        pass


def _args(**kw: object) -> argparse.Namespace:
    args = parse("bench serve", add_arguments, ["--step-s", "0.5", "--min-requests", "20",
                                                "--warmup-s", "0.2", "--growth", "2",
                                                "--max-steps", "7"])
    vars(args).update(kw)
    return args


def test_closed_loop_times_each_request_on_its_own(fresh_stub):
    fresh_stub.configure(delay_ms=20.0)
    lat = one_at_a_time(fresh_stub.url, "noop", 16, 5, _args())
    assert len(lat) == 5 and all(0.019 < x < 0.5 for x in lat)
    assert fresh_stub.stats()["received"] == 5 and fresh_stub.stats()["peak_connections"] == 1


def test_the_ladder_finds_the_stubs_capacity(fresh_stub):
    fresh_stub.configure(delay_ms=20.0, capacity=10)
    seen = []
    r = ladder(_Stub(fresh_stub.url), "noop", 16, 1, 100.0, _args(),
               lambda rec, s: seen.append((rec, s)))
    best = r["best"]
    assert best is not None and best["sustainable"] and best["error_rate"] <= 0.01
    assert 50 <= best["offered_rps"] <= 300 < r["first_unsustainable_rps"] * 1.5
    assert best["offered_rps"] < r["first_unsustainable_rps"]
    assert 0.019 < r["single_request_s"] < 0.2 and best["p99_s"] < 0.1
    assert len(seen) == r["steps"] and any(not s["sustainable"] for _, s in seen)
    failed = [s for _, s in seen if not s["sustainable"]]
    assert all(s["statuses"].get("503", 0) > 0 for s in failed)  # refused, not lost
    for rec, s in seen:  # one record per scheduled request, in the shared schema
        assert len(rec) == s["sent"] + int(round(s["not_sent_rate"] * len(rec)))
        assert {"intended_arrival", "end", "status", "latency", "http_status"} <= set(rec)


def test_the_peers_table_prints_the_seconds_of_its_rows_in_ms():
    rows = [{"server": "servelab", "config": "processes", "slo_ms": 100.0, "best_rps": 80.0,
             "p99_s": 0.0421, "max_rps": 95.0, "note": ""},
            {"server": "ray-serve", "config": "", "slo_ms": 100.0, "best_rps": None,
             "p99_s": None, "max_rps": None, "note": "skipped: no ray"}]
    lines = format_peers(rows).splitlines()
    assert "best rate at p99 <= 100 ms" in lines[2]
    assert "80.0 req/s (p99 42 ms)" in lines[3] and "95.0 req/s" in lines[3]
    assert "never" in lines[4] and lines[4].endswith("skipped: no ray")
