"""The OS study's library and command on tiny inputs: /proc counters, copy-on-write after fork,
IPC, one live concurrency-model run, affinity, perf availability, the command's output."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from servelab.analysis import cmd_os_study
from servelab.analysis.os_study import command, ctxsw, ipc, memory, procfs
from servelab.analysis.os_study.affinity import pin
from servelab.analysis.os_study.cache import measure_cache, measure_perf


def test_procfs_counts_this_process_blocking_and_its_memory() -> None:
    before = procfs.counters(os.getpid())
    for _ in range(20):
        time.sleep(0.001)  # each sleep blocks: a voluntary switch
    d = procfs.counters(os.getpid()) - before
    assert d.voluntary >= 15 and d.involuntary >= 0 and d.cpu_s >= 0
    assert before.threads >= 1
    mem = procfs.smaps_rollup(os.getpid())
    assert mem["Rss"] > 0 and "Pss" in mem and "Private_Dirty" in mem


class _Arrays:
    """A stand-in model: 16 MiB of NumPy 'weights', inference only reads them."""

    def __init__(self) -> None:
        self.weights = [np.ones(1 << 20, dtype=np.float64) for _ in range(2)]
        self.module = SimpleNamespace(parameters=lambda: self.weights)

    def infer(self, rows: list[object]) -> float:
        return float(sum(w[::4096].sum() for w in self.weights))


def test_copy_on_write_pages_are_copied_only_when_the_worker_writes() -> None:
    rows = memory._cow(_Arrays(), None, False, 2)
    uss = {(r["stage"], r["worker"]): r["uss_mb"] for r in rows}
    for w in (0, 1):
        assert uss[("inferred", w)] - uss[("forked", w)] < 4  # reading shares the pages
        assert uss[("written", w)] - uss[("inferred", w)] > 14  # writing copies 16 MiB


def test_ipc_rows_per_method_and_size() -> None:
    df = ipc.measure(sizes=(64, 1 << 20), samples=4, warmups=1)
    assert len(df) == 3 * 2 * 4 and (df["one_way_s"] > 0).all()
    s = ipc.summarize(df)
    assert set(s["method"]) == {"pipe", "queue", "shm"} and (s["gb_per_s"] > 0).all()


def test_a_threads_server_switches_and_burns_cpu_per_request() -> None:
    """The per-run accounting on an in-process server (a subprocess start costs seconds: the
    study's own runs cover that path); the counts here include the generator's threads."""
    from servelab.analysis.os_study import live
    from tests.servers.helpers import start

    srv = start("threads", models=("noop",), workers=2)
    try:
        spec = live.workload({"noop": 1.0}, 40.0, 0.5, seed=1)
        row = ctxsw._one(srv, {"server": [os.getpid()]}, spec, "tiny")
    finally:
        srv.stop()
    assert row["ok"] == row["requests"] > 5
    assert row["vcsw_per_req"] > 1 and row["cpu_s_per_req"] > 1e-4 and row["threads"] > 2
    assert row["cpu_over_wall"] > 0 and row["wall_s_per_req"] > 0
    assert row["vcsw_server"] == row["vcsw_per_req"]
    assert row["compute_s"] > 0 and row["queue_s"] >= 0 and row["ipc_s"] == 0  # threads


def test_pinning_sets_every_thread_and_perf_says_what_it_counts() -> None:
    cores = os.sched_getaffinity(0)
    try:
        pin(os.getpid(), {min(cores)})
        assert os.sched_getaffinity(0) == {min(cores)}
    finally:
        pin(os.getpid(), cores)
    assert os.sched_getaffinity(0) == cores
    perf = measure_perf()
    assert {"hw", "sw"} == set(perf["kind"]) and perf["supported"].dtype == bool
    assert (perf.loc[~perf["supported"], "reason"] != "").all()
    cache = measure_cache(max_bytes=64 << 10, reads=2000, repeats=1)
    assert list(cache["bytes"]) == [16 << 10, 64 << 10] and (cache["s_per_read"] > 0).all()


def test_the_command_prints_every_number_with_its_reproduce_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = SimpleNamespace(quick=True, variant="tiny", only=["pingpong"], profile=None,
                           out=str(tmp_path))
    assert cmd_os_study.run(args) == 0  # type: ignore[arg-type]
    out = capsys.readouterr().out
    line = "# servelab os-study --quick --variant tiny --only pingpong"
    assert "switch thread" in out and "switch process" in out and line in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    m = summary["measurements"]["pingpong"]
    assert m["command"] == line[2:] and len(m["numbers"]) == 2 and "us per switch" in m["claim"]
    assert (tmp_path / "pingpong.parquet").is_file() and (tmp_path / "pingpong.png").is_file()
    assert command([], False, "full") == "servelab os-study"
    assert command(["sched"], True, "full", "P.json") == \
        "servelab os-study --profile P.json --quick --only sched"


def test_live_runs_wait_for_quiet_only_when_asked_and_not_forever(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:

    from servelab.analysis.os_study import live

    flag = tmp_path / "quiet"
    flag.touch()
    monkeypatch.delenv(live.QUIET_ENV, raising=False)
    assert live.quiet_file() is None
    t = time.monotonic()
    live.wait_quiet(poll_s=0.01)  # unset: nothing waits, whatever files exist
    monkeypatch.setenv(live.QUIET_ENV, str(flag))
    assert live.quiet_file() == flag
    live.wait_quiet(poll_s=0.01, max_s=0.2)  # set and present: waits, bounded
    assert 0.2 <= time.monotonic() - t < 2.0
