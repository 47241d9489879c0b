"""The open-loop generator against the stub server: schedule, accounting, failure modes.

Runs are a few seconds at a few hundred to a thousand requests per second, on 127.0.0.1.
Timing assertions are about the schedule (counts, rates, distributions) or generous; the
strict 1 ms lag target is checked by ``servelab bench load``, not here.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import numpy as np
import pytest
from scipy import stats

from servelab.core.workload import WorkloadSpec
from servelab.loadgen.closedloop import naive_latency, run_closed_loop
from servelab.loadgen.generator import SenderOptions
from servelab.loadgen.payloads import Payloads, Target
from servelab.loadgen.runner import LoadConfig, LoadRun, run_load
from servelab.loadgen.schedule import Schedule
from servelab.loadgen.stub import StubProcess

from .conftest import spec


def load(s: WorkloadSpec, target: str, processes: int = 1, warmup: float = 0.0,
         binary: bool = False, **options: Any) -> LoadRun:
    cfg = LoadConfig(workload=s.name, target=target, processes=processes, warmup=warmup,
                     binary=binary, progress=False)
    return run_load(cfg, SenderOptions(**options), spec=s, write=False)


def assert_each_request_recorded_once(run: LoadRun) -> None:
    df = run.records
    assert df["request_id"].tolist() == list(range(run.summary["generator"]["scheduled"]))
    assert df["status"].notna().all()
    assert sum(run.summary["generator"]["counts"].values()) == len(df)


def test_achieved_rate_and_each_request_recorded_once(fresh_stub: StubProcess) -> None:
    run = load(spec(rate=1000, duration=2.0), fresh_stub.url)
    df, s = run.records, run.summary
    assert len(df) == 2000
    assert_each_request_recorded_once(run)
    assert s["generator"]["counts"]["ok"] == 2000
    assert fresh_stub.stats()["received"] == 2000  # the server saw each request once, too
    assert s["generator"]["achieved_rate"] == pytest.approx(1000, rel=0.02)
    sends = np.sort(df["enqueue"].to_numpy())
    assert (len(sends) - 1) / (sends[-1] - sends[0]) == pytest.approx(1000, rel=0.02)
    assert (df["latency"] >= df["send_lag"]).all()
    assert s["generator"]["lag_s"]["p50"] < 5e-3  # generous: the machine is shared


def test_poisson_schedule_passes_a_ks_test() -> None:
    """The intended send times of a Poisson workload are a Poisson process: exponential gaps at
    the rate, by a one-sample KS test at alpha = 1e-3 against the exact critical value for this
    many gaps (``scipy.stats.kstwo``; about 0.048 for 1613 gaps).

    The schedule is seeded, so this is deterministic.  It has power: the same gaps fail against
    a rate 30% off either way (D = 0.09 and 0.11), and a constant-rate schedule fails with
    D = 1 - 1/e = 0.63.  That the sender keeps to these times is the next test's business.
    """
    rate, alpha = 400.0, 1e-3
    gaps = np.diff(Schedule.from_spec(spec(rate=rate, duration=4.0, kind="poisson")).times)

    def ks(x: np.ndarray, r: float) -> float:
        return float(stats.kstest(x, "expon", args=(0, 1 / r)).statistic)

    critical = float(stats.kstwo.ppf(1 - alpha, len(gaps)))
    assert ks(gaps, rate) < critical
    assert ks(gaps, 1.3 * rate) > critical and ks(gaps, rate / 1.3) > critical
    flat = np.diff(Schedule.from_spec(spec(rate=rate, duration=4.0)).times)
    assert ks(flat, rate) > critical


def test_poisson_sends_keep_to_the_schedule(fresh_stub: StubProcess) -> None:
    """The sender sends the Poisson schedule at its intended times: none early, and most before
    the next request is due — so the sends are the (KS-tested, above) Poisson times plus a lag.

    Why not a KS test on the actual send gaps (as this test once did): at 400/s the mean gap is
    2.5 ms, and the machine's wake-up jitter alone is of that order when other jobs run (seen
    here beside the suite: lag p50 0.2-1.3 ms, p90 1.5-10 ms, p99 5-30 ms).  Jitter reshuffles
    the short gaps, so the send gaps' distance to the schedule's is the machine's load, not
    sampling noise — D = 0.03-0.06 idle, 0.11-0.14 under load, against a 1e-3 critical value
    for 1613 gaps of 0.07 — and no fixed bound both passes a loaded machine and says much.
    Split instead: the schedule is tested exactly (deterministic, seeded), and here the sender's
    adherence, with bounds that hold under load but not for a wrong sender:

    * every request is sent once, at the schedule's intended time or later, never earlier (exact,
      whatever the load): a sender that paces at the mean rate, or batches by sending ahead,
      sends some requests before they are due;
    * the median lag is under the schedule's mean gap, 1 / rate: most requests go out before
      the next one is due, so consecutive sends are not merged.  A sender that flushes what is
      due every 6 ms has a median lag of 3 ms or more and fails; the machine's jitter
      (median 1.3 ms at worst above) passes.

    Run with ``realtime`` (SCHED_FIFO, where permitted), as ``servelab load --realtime`` offers
    for a busy machine.
    """
    rate = 400.0
    s = spec(rate=rate, duration=4.0, kind="poisson")
    run = load(s, fresh_stub.url, binary=True, realtime=True)
    df = run.records
    assert_each_request_recorded_once(run)
    assert (df["status"] == "ok").all()
    np.testing.assert_array_equal(df["intended_arrival"].to_numpy(), Schedule.from_spec(s).times)
    lag = (df["enqueue"] - df["intended_arrival"]).to_numpy()
    assert lag.min() >= -1e-9, f"sent {-lag.min() * 1e3:.3f} ms before its intended time"
    assert np.median(lag) < 1 / rate, f"median lag {np.median(lag) * 1e3:.2f} ms"


def test_stall_shows_in_open_loop_p99_and_a_closed_loop_misses_it(fresh_stub: StubProcess) -> None:
    """A 1 s server stall: open loop, every request that arrived during it waits (p99 ~ 1 s);
    a closed loop of one client is stuck on one request and sends the rest late, timing them
    from their late sends (p99 ~ the normal service time)."""
    s = spec(rate=200, duration=3.0)
    fresh_stub.configure(delay_ms=2.0, stall_at=1.0, stall_s=1.0)
    run = load(s, fresh_stub.url)
    assert_each_request_recorded_once(run)
    p99_open = run.summary["latency_s"]["p99"] * 1e3
    assert p99_open > 500.0
    df = run.records
    in_stall = df[(df["intended_arrival"] > 1.05) & (df["intended_arrival"] < 1.9)]
    assert (in_stall["latency"] > 0.1).all()  # every request of the stall was delayed

    fresh_stub.configure(delay_ms=2.0, stall_at=1.0, stall_s=1.0)
    schedule = Schedule.from_spec(s)
    payloads = Payloads.build(schedule, Target.parse(fresh_stub.url))
    closed = asyncio.run(run_closed_loop(schedule, payloads, Target.parse(fresh_stub.url)))
    naive = naive_latency(closed) * 1e3
    assert naive.max() > 900.0  # one request did sit through the stall...
    p99_closed = float(np.percentile(naive, 99))
    assert p99_closed < 100.0  # ...but the p99 does not show it
    assert p99_open > 10 * p99_closed
    # the closed loop also fell behind its schedule: it could not offer the load
    assert (closed.send - closed.t0 - schedule.times).max() > 0.5


def test_refused_connection_gives_error_records_not_a_crash() -> None:
    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    run = load(spec(rate=100, duration=0.5), f"http://127.0.0.1:{port}")
    assert_each_request_recorded_once(run)
    assert run.summary["generator"]["counts"]["error"] == len(run.records) == 50
    assert run.records["error"].str.contains("connect failed").all()
    assert run.records["end"].notna().all()


def test_status_codes_map_to_rejected_timeout_and_error(fresh_stub: StubProcess) -> None:
    fresh_stub.configure(reject_every=3)
    run = load(spec(rate=300, duration=1.0), fresh_stub.url)
    c = run.summary["generator"]["counts"]
    assert c["rejected"] == 100 and c["ok"] == 200
    assert (run.records.loc[run.records["status"] == "rejected", "http_status"] == 503).all()

    fresh_stub.configure(reject_every=0, status=504)
    run = load(spec(rate=100, duration=0.5), fresh_stub.url)
    assert run.summary["generator"]["counts"]["timeout"] == 50
    fresh_stub.configure(status=500)
    run = load(spec(rate=100, duration=0.5), fresh_stub.url)
    assert run.summary["generator"]["counts"]["error"] == 50
    assert (run.records["error"] == "HTTP 500").all()


def test_client_timeout(fresh_stub: StubProcess) -> None:
    fresh_stub.configure(delay_ms=1000.0)
    run = load(spec(rate=50, duration=0.4), fresh_stub.url, timeout=0.2)
    assert_each_request_recorded_once(run)
    assert run.summary["generator"]["counts"]["timeout"] == 20
    lat = run.records["end"] - run.records["enqueue"]
    assert ((lat > 0.19) & (lat < 0.5)).all()


def test_not_sent_when_the_generator_cannot_keep_up(fresh_stub: StubProcess) -> None:
    """One connection, a 50 ms server, 200 req/s: requests wait for the connection and those
    that would go out more than max_lag late are recorded not_sent — all still accounted."""
    fresh_stub.configure(delay_ms=50.0)
    run = load(spec(rate=200, duration=1.0), fresh_stub.url, max_connections=1, max_lag=0.1)
    assert_each_request_recorded_once(run)
    c = run.summary["generator"]["counts"]
    assert c["not_sent"] > 50 and c["ok"] > 10 and c["ok"] + c["not_sent"] == 200
    sent = run.records[run.records["status"] == "ok"]
    assert sent["send_lag"].max() <= 0.1 + 0.06  # never sent later than max_lag (+ one answer)
    assert any("not sent" in f for f in run.summary["generator"]["flags"])
    ns = run.records[run.records["status"] == "not_sent"]
    assert ns["enqueue"].isna().all() and ns["latency"].isna().all()


def test_abort_marks_the_rest_not_sent(fresh_stub: StubProcess) -> None:
    from servelab.loadgen.generator import OpenLoopSender

    s = Schedule.from_spec(spec(rate=200, duration=2.0))
    payloads = Payloads.build(s, Target.parse(fresh_stub.url))
    fresh_stub.configure(delay_ms=300.0)

    async def main() -> Any:
        sender = OpenLoopSender(s, payloads, Target.parse(fresh_stub.url))
        asyncio.get_running_loop().call_later(0.5, sender.abort)
        return await sender.run()

    r = asyncio.run(main())
    names = {code: int((r.status == code).sum()) for code in np.unique(r.status)}
    assert 0 not in names and sum(names.values()) == len(s)  # every request ended once
    from servelab.loadgen.generator import CODE
    assert names.get(CODE["ok"], 0) > 20  # answered before the abort
    assert names.get(CODE["not_sent"], 0) > 250  # the rest of the schedule
    assert names.get(CODE["error"], 0) > 20  # in flight at the abort


def test_two_processes_split_one_schedule(fresh_stub: StubProcess) -> None:
    run = load(spec(rate=500, duration=1.5, kind="poisson"), fresh_stub.url, processes=2)
    assert_each_request_recorded_once(run)
    df = run.records
    assert run.summary["generator"]["counts"]["ok"] == len(df)
    assert df["process"].tolist() == [i % 2 for i in range(len(df))]
    assert fresh_stub.stats()["received"] == len(df)
    # both processes sent on the same clock: sends follow the intended order closely
    assert (df["send_lag"] > -1e-4).all() and df["send_lag"].median() < 0.005


def test_realtime_option_is_undone_after_the_run(fresh_stub: StubProcess) -> None:
    import os

    from servelab.loadgen.processes import enter_realtime

    before = os.sched_getscheduler(0)
    undo = enter_realtime()  # falls back (with a warning) where it is not permitted
    assert os.sched_getscheduler(0) in (before, os.SCHED_FIFO)
    undo()
    assert os.sched_getscheduler(0) == before
    run = load(spec(rate=200, duration=0.5), fresh_stub.url, realtime=True)
    assert run.summary["generator"]["counts"]["ok"] == 100 and run.summary["options"]["realtime"]
    assert os.sched_getscheduler(0) == before
