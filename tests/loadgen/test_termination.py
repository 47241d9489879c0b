"""``servelab load`` always ends, with every scheduled request accounted, whatever the server
does: it stops reading, stops answering, resets or closes connections — at rates above what
the generator can send — and it refuses to start against a target that lacks the workload's
models.

Each run is about a second of schedule with a short client timeout; the bound checked is the
documented one: the last intended send + ``max_lag`` + ``timeout`` + the watchdog's grace, plus
slack for start-up and teardown on a shared two-core machine.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import threading
import time
from typing import Any

import numpy as np
import pytest

from servelab.cli import main
from servelab.core.requests import STATUSES
from servelab.loadgen.generator import CODE, GRACE_S, OpenLoopSender, SenderOptions
from servelab.loadgen.payloads import Payloads, Target
from servelab.loadgen.runner import LoadConfig, LoadRun, run_load
from servelab.loadgen.schedule import Schedule
from servelab.loadgen.stub import StubProcess
from servelab.loadgen.target import MissingModels

from .conftest import spec

SLACK_S = 3.0
"""Start-up (connection pool, bodies) and teardown on top of the documented bound."""


def timed_load(target: str, rate: float, duration: float, processes: int = 1,
               check: bool = True, **options: Any) -> tuple[LoadRun, float, SenderOptions]:
    s = spec(rate=rate, duration=duration)
    opts = SenderOptions(**options)
    cfg = LoadConfig(workload=s.name, target=target, processes=processes, progress=False,
                     check_models=check)
    t = time.monotonic()
    run = run_load(cfg, opts, spec=s, write=False)
    return run, time.monotonic() - t, opts


def assert_accounted(run: LoadRun, allowed: set[str]) -> dict[str, int]:
    df = run.records
    n = run.summary["generator"]["scheduled"]
    assert df["request_id"].tolist() == list(range(n))
    assert set(df["status"]) <= allowed, df["status"].value_counts()
    counts = run.summary["generator"]["counts"]
    assert sum(counts.values()) == n == len(df)
    assert set(counts) == set(STATUSES)
    # a request that was never sent has no send time; every other one has an end
    ns = df["status"] == "not_sent"
    assert df.loc[ns, "enqueue"].isna().all()
    assert df.loc[~ns, "end"].notna().all()
    return counts


def bound(duration: float, opts: SenderOptions) -> float:
    return duration + opts.max_lag + opts.timeout + GRACE_S + SLACK_S


MODES = {
    # mode: statuses a request may end in (a connect the overwhelmed stub does not accept in
    # time is a timeout too)
    "no_read": {"timeout", "not_sent"},
    "no_answer": {"timeout", "not_sent"},
    "reset": {"error", "timeout", "not_sent"},
    "close": {"error", "timeout", "not_sent"},
}


@pytest.mark.parametrize("mode", list(MODES))
def test_load_ends_on_time_whatever_the_server_does(fresh_stub: StubProcess, mode: str) -> None:
    """20,000 req/s offered (far above what one sender sends here) to a stub that misbehaves
    on every infer request: the run still ends within its bound, nothing is ok, and every
    request ends in exactly one of the statuses that misbehaviour allows — including the many
    the generator could not send in time (``not_sent``)."""
    fresh_stub.configure(mode=mode)
    run, wall, opts = timed_load(fresh_stub.url, rate=20_000, duration=0.5, timeout=0.5,
                                 max_lag=0.2, max_connections=256)
    assert wall < bound(0.5, opts), f"{mode}: took {wall:.1f} s"
    counts = assert_accounted(run, MODES[mode])
    assert counts["not_sent"] > 0  # the rate was above what the generator can send
    sent = run.summary["requests"] - counts["not_sent"]
    stats = fresh_stub.stats()
    assert sent > 50 and stats["misbehaved"] > 0
    if mode != "no_read":  # (a stub that stopped reading never sees the client close)
        assert stats["peak_connections"] <= 256 + 4  # max_connections held (+ control ones)
    if mode in ("no_read", "no_answer"):
        assert counts["timeout"] == sent
    else:
        assert counts["error"] > 0
        lost = run.records[run.records["status"] == "error"]
        assert lost["error"].str.contains("connection").all()  # lost / closed by the server


def test_two_sender_processes_end_on_time_against_a_silent_server(fresh_stub: StubProcess) -> None:
    fresh_stub.configure(mode="no_answer")
    run, wall, opts = timed_load(fresh_stub.url, rate=4000, duration=0.5, processes=2,
                                 timeout=0.5, max_lag=0.2, max_connections=256)
    assert wall < bound(0.5, opts) + 3.0  # + spawning two interpreters
    counts = assert_accounted(run, {"timeout", "not_sent"})
    assert counts["timeout"] > 0
    assert set(run.records["process"]) == {0, 1}


def test_a_dead_sender_process_is_accounted_not_a_hang(fresh_stub: StubProcess) -> None:
    """A sender process killed mid-run: the parent records its share as errors (saying why)
    and the run ends on time."""
    fresh_stub.configure(delay_ms=1.0)
    killed: list[int] = []

    def kill_one() -> None:
        end = time.monotonic() + 20
        while time.monotonic() < end and not killed:
            for p in mp.active_children():
                if p.name == "loadgen-sender-1" and fresh_stub.stats()["received"] > 100:
                    p.kill()
                    killed.append(p.pid or 0)
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one, daemon=True)
    killer.start()
    run, wall, opts = timed_load(fresh_stub.url, rate=400, duration=2.0, processes=2,
                                 timeout=0.5, max_lag=0.2)
    killer.join(5)
    assert killed, "the sender process was not found"
    assert wall < bound(2.0, opts) + 3.0
    df = run.records
    counts = assert_accounted(run, {"ok", "error", "not_sent"})
    lost = df[df["process"] == 1]
    assert (lost["status"] == "error").all() and lost["error"].str.contains("lost").all()
    assert counts["ok"] == int((df["process"] == 0).sum())  # the other process carried on


def test_the_watchdog_ends_requests_that_never_end_on_their_own(fresh_stub: StubProcess) -> None:
    """The last line of defence: with its client timeouts disabled (a stand-in for any bug that
    leaves a request open), a run against a server that never answers still ends at its hard
    end, every open request ended there."""
    fresh_stub.configure(mode="no_answer")
    s = Schedule.from_spec(spec(rate=200, duration=0.5))
    target = Target.parse(fresh_stub.url)
    payloads = Payloads.build(s, target)

    class NoTimeouts(OpenLoopSender):
        def _sweep_once(self) -> None:
            pass

    opts = SenderOptions(timeout=0.5, max_lag=0.2)

    async def go() -> Any:
        sender = NoTimeouts(s, payloads, target, opts)
        await sender.prepare()
        t0 = time.monotonic() + 0.01
        r = await sender.run(t0)
        return r, time.monotonic() - t0, sender.hard_end() - t0

    r, wall, hard = asyncio.run(go())
    assert hard == pytest.approx(s.times[-1] + 0.2 + 0.5 + GRACE_S)
    assert hard - 0.05 < wall < hard + 1.0
    assert (r.status == CODE["timeout"]).all()
    assert all("end of the run" in r.errors[i] for i in range(len(s)))
    assert np.all(r.end >= r.send)


def test_a_workload_for_a_model_the_target_lacks_stops_before_sending(
    fresh_stub: StubProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh_stub.configure(models="lstm_forecaster,distilbert")
    with pytest.raises(MissingModels, match="mobilenet_v2") as info:
        timed_load(fresh_stub.url, rate=100, duration=0.5)
    assert list(info.value.missing) == ["mobilenet_v2"]
    assert "unknown model" in info.value.missing["mobilenet_v2"]
    assert fresh_stub.stats()["received"] == 0  # nothing was sent
    rc = main(["load", "--workload", "fast-only", "--target", fresh_stub.url, "--duration", "0.5",
               "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "does not serve model(s)" in err and "mobilenet_v2" in err
    # without the check, the requests go and come back 404 (errors), as before
    run, _, _ = timed_load(fresh_stub.url, rate=100, duration=0.5, check=False)
    assert run.summary["generator"]["counts"]["error"] == 50
    assert (run.records["http_status"] == 404).all()


def test_the_model_check_passes_for_served_models(fresh_stub: StubProcess) -> None:
    fresh_stub.configure(models="mobilenet_v2")
    run, _, _ = timed_load(fresh_stub.url, rate=100, duration=0.5)
    assert run.summary["generator"]["counts"]["ok"] == 50
