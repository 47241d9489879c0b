"""The simulated request path outside the scheduler: the load generator and the server's front end.

A request's life, as a live run measures it (latency from the *intended* send time)::

    client send ── front end in ── [convoy] ── SimServer.admit ... inference ... completion
      (CPU, the load           (CPU, the server's                                   │
       generator's process)     front-end interpreter)                              v
                                        client receive ── front end out ◄───────────┘

* **client** (``profile.client``, when ``colocated``): the load generator's CPU per request
  (half at the send, half at the receive) runs on the same cores in its own process — what it
  spends, the server loses.  It is one asyncio loop: one send or receive at a time.
* **front end** (``profile.frontend[setup]``): the server's CPU per request outside inference,
  ``in_share`` of it before the request reaches the queue and the rest after it completes.
  It runs in the front end's interpreter: the one inference threads use (threads; async with
  inline or thread offload), where it contends for the GIL with them (the CPU model's co-run
  rates), or the main process of a pool (processes; async with process offload).  On an
  asyncio server every pass goes through the one event loop (``serial``); with inline offload
  inference runs on the loop as well, so a front-end pass waits for the stage in progress.
* **hand-off latency** (``latency_s``): time on the path that takes no CPU (thread wake-ups,
  the loopback), half on the way in, half on the way out.
* **convoy**: entering the queue also waits ``sum convoy[model]`` over the inference jobs then
  running in the front end's interpreter — the measured extra wait of a thread that re-acquires
  the GIL after every socket call beside a thread that holds it.

The front end keeps its own occupancy integral (``area``) so that Little's law can be checked
over the whole path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from simpy.events import Timeout

from servelab.core.config import ServerConfig
from servelab.core.profile import FrontEndCost, Profile, setup_name
from servelab.core.requests import Request
from servelab.core.workload import Arrivals
from servelab.sim.cpu import FluidCpu
from servelab.sim.server import SimServer


def shares_inference_gil(config: ServerConfig) -> bool:
    """Whether the front end runs in the interpreter where inference threads run."""
    return config.concurrency == "threads" or (
        config.concurrency == "async" and config.offload in ("thread", "inline")
    )


class FrontEnd:
    """The client and front-end stages around one :class:`SimServer` (module docstring)."""

    def __init__(
        self, server: SimServer, cpu: FluidCpu, profile: Profile, config: ServerConfig,
        arrivals: Arrivals,
    ):
        self.server = server
        self.env = server.env
        self.cpu = cpu
        setup = setup_name(config.concurrency, config.offload)
        fe = profile.frontend.get(setup, FrontEndCost())
        self.fe = fe
        names = arrivals.models
        sizes = arrivals.input_size.astype(float)
        idx = arrivals.model_idx
        n = len(arrivals)
        fe_cpu, cl_cpu = np.zeros(n), np.zeros(n)
        client = profile.client
        for j, m in enumerate(names):
            sel = idx == j
            if not sel.any():
                continue
            if m in fe.cpu:
                fe_cpu[sel] = fe.cpu[m].evaluate(sizes[sel])
            if client.colocated and m in client.cpu:
                cl_cpu[sel] = client.cpu[m].evaluate(sizes[sel])
        self.fe_in = (fe_cpu * fe.in_share).tolist()
        self.fe_out = (fe_cpu * (1.0 - fe.in_share)).tolist()
        self.cl_half = (cl_cpu / 2.0).tolist()
        self.domain: Any = "server" if shares_inference_gil(config) else "frontend"
        self.serial = "loop" if fe.serial else None
        self.convoy = dict(fe.convoy) if self.domain == "server" else {}
        self.half_latency = fe.latency_s / 2
        self.area = 0.0
        self.in_front = 0
        self._t = 0.0
        server.entry = self.arrive
        server.on_complete = self.respond

    def _occupancy(self, delta: int) -> None:
        now = self.env._now
        self.area += self.in_front * (now - self._t)
        self._t = now
        self.in_front += delta

    # -- in ------------------------------------------------------------------------------------
    def arrive(self, r: Request, now: float) -> None:
        self._occupancy(1)
        if self.cl_half[r.id] > 0:
            self.cpu.submit(self.cl_half[r.id], 1.0, 1.0, self._sent, r, kind="client",
                            domain=None, serial="client")
        else:
            self._sent(r)

    def _sent(self, r: Request) -> None:
        w = self.fe_in[r.id]
        if w > 0:
            self.cpu.submit(w, 1.0, 1.0, self._parsed, r, kind="frontend", domain=self.domain,
                            serial=self.serial)
        else:
            self._parsed(r)

    def _parsed(self, r: Request) -> None:
        delay = self.half_latency
        if self.convoy:
            for kind, k in self.cpu.running(self.domain).items():
                delay += k * self.convoy.get(kind, 0.0)
        if delay > 0:
            t = Timeout(self.env, delay, value=r)
            t.callbacks.append(self._entered)  # type: ignore[union-attr]
        else:
            self._enter(r)

    def _entered(self, event: Any) -> None:
        self._enter(event.value)

    def _enter(self, r: Request) -> None:
        self._occupancy(-1)
        self.server.admit(r, self.env._now)

    # -- out -----------------------------------------------------------------------------------
    def respond(self, r: Request) -> None:
        """The server ended ``r``: its answer goes back through the front end and the client."""
        self._occupancy(1)
        w = self.fe_out[r.id]
        if w > 0:
            self.cpu.submit(w, 1.0, 1.0, self._encoded, r, kind="frontend", domain=self.domain,
                            serial=self.serial)
        else:
            self._encoded(r)

    def _encoded(self, r: Request) -> None:
        if self.half_latency > 0:
            t = Timeout(self.env, self.half_latency, value=r)
            t.callbacks.append(self._out_delivered)  # type: ignore[union-attr]
        else:
            self._delivered(r)

    def _out_delivered(self, event: Any) -> None:
        self._delivered(event.value)

    def _delivered(self, r: Request) -> None:
        if self.cl_half[r.id] > 0:
            self.cpu.submit(self.cl_half[r.id], 1.0, 1.0, self._received, r, kind="client",
                            domain=None, serial="client")
        else:
            self._received(r)

    def _received(self, r: Request) -> None:
        self._occupancy(-1)
        r.end = self.env._now


def active(profile: Profile, config: ServerConfig) -> bool:
    """Whether the profile measured this setup's front end or the load generator."""
    setup = setup_name(config.concurrency, config.offload)
    return setup in profile.frontend or (profile.client.colocated and bool(profile.client.cpu))
