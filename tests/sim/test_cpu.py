"""The CPU model's mechanisms on cases small enough to know the answer: measured co-run rates,
GIL domains, serial groups (an event loop) and cores freed by threads waiting for the GIL."""

from __future__ import annotations

import pytest
import simpy

from servelab.sim.cpu import FluidCpu


def run(cpu: FluidCpu, jobs: list[dict]) -> dict[str, float]:
    """Submit ``jobs`` at their ``at`` times; the finishing time of each, by name."""
    env = cpu.env
    ends: dict[str, float] = {}

    def submit(job: dict) -> None:
        kw = {k: job[k] for k in ("kind", "domain", "serial") if k in job}
        cpu.submit(job["work"], job.get("demand", 1.0), job.get("gil", 0.0),
                   lambda name: ends.__setitem__(name, env.now), job["name"], **kw)

    for job in jobs:
        t = simpy.events.Timeout(env, job.get("at", 0.0))
        t.callbacks.append(lambda _e, job=job: submit(job))
    env.run()
    return ends


def test_co_run_rates_from_the_table_and_alone_afterwards():
    env = simpy.Environment()
    cpu = FluidCpu(env, 2, pairs={("a", "b"): 0.5, ("b", "a"): 0.25, ("a", "a"): 0.5,
                                  ("b", "b"): 0.5})
    ends = run(cpu, [{"name": "a", "work": 1.0, "kind": "a", "gil": 1.0},
                     {"name": "b", "work": 1.0, "kind": "b", "gil": 1.0}])
    # Both run: a at 0.5, b at 0.25.  a ends at 2 (b has done 0.5), b alone does the rest.
    assert ends["a"] == pytest.approx(2.0)
    assert ends["b"] == pytest.approx(2.5)


def test_stretches_add_up_beyond_two_threads():
    env = simpy.Environment()
    cpu = FluidCpu(env, 4, pairs={("a", "a"): 0.5})
    ends = run(cpu, [{"name": f"a{i}", "work": 1.0, "kind": "a", "gil": 1.0} for i in range(3)])
    assert list(ends.values()) == [pytest.approx(3.0)] * 3  # stretch 1 + 2 x (1/0.5 - 1)


def test_jobs_in_other_domains_do_not_contend():
    env = simpy.Environment()
    cpu = FluidCpu(env, 2, pairs={("a", "a"): 0.1})
    ends = run(cpu, [{"name": "x", "work": 1.0, "kind": "a", "gil": 1.0, "domain": "p1"},
                     {"name": "y", "work": 1.0, "kind": "a", "gil": 1.0, "domain": "p2"}])
    assert ends == {"x": pytest.approx(1.0), "y": pytest.approx(1.0)}


def test_without_a_table_the_fluid_token_model_applies():
    env = simpy.Environment()
    cpu = FluidCpu(env, 2)
    ends = run(cpu, [{"name": n, "work": 1.0, "gil": 0.75} for n in "xy"])
    assert ends["x"] == pytest.approx(1.5) and ends["y"] == pytest.approx(1.5)


def test_a_serial_group_runs_one_job_at_a_time_in_arrival_order():
    env = simpy.Environment()
    cpu = FluidCpu(env, 2, shared_gil=False)
    ends = run(cpu, [{"name": "first", "work": 1.0, "serial": "loop"},
                     {"name": "second", "work": 1.0, "serial": "loop", "at": 0.1},
                     {"name": "free", "work": 1.0, "at": 0.1}])
    assert ends == {"first": pytest.approx(1.0), "second": pytest.approx(2.0),
                    "free": pytest.approx(1.1)}


def test_threads_waiting_for_the_gil_leave_cores_to_others():
    # Two GIL-bound threads on one core share the token (each at 1/2) and together keep one
    # core busy; a job of another process on a second core is not slowed.
    env = simpy.Environment()
    cpu = FluidCpu(env, 2, pairs={("a", "a"): 0.5})
    ends = run(cpu, [{"name": "t1", "work": 1.0, "kind": "a", "gil": 1.0},
                     {"name": "t2", "work": 1.0, "kind": "a", "gil": 1.0},
                     {"name": "p", "work": 1.0, "domain": None}])
    assert ends["p"] == pytest.approx(1.0)
    assert ends["t1"] == pytest.approx(2.0)


def test_processor_sharing_when_jobs_outnumber_the_cores():
    env = simpy.Environment()
    cpu = FluidCpu(env, 1, shared_gil=False)
    ends = run(cpu, [{"name": "x", "work": 1.0}, {"name": "y", "work": 2.0}])
    assert ends == {"x": pytest.approx(2.0), "y": pytest.approx(3.0)}
    assert cpu.utilization(3.0) == pytest.approx(1.0)
