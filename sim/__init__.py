"""servelab.sim — the SimPy model of one server configuration, and what runs it at scale.

* :mod:`~servelab.sim.run` — ``simulate(config, workload, profile, seed)`` -> records + summary
* :mod:`~servelab.sim.server` — the scheduling core (core/scheduling.py: admission, policy,
  batching, MLFQ preemption, bounded queue, deadlines — the live engine's, unchanged) on
  simulated time, with workers, model locks and the CPU model
* :mod:`~servelab.sim.cpu` — cores shared in the fluid limit, interference, the GIL token
* :mod:`~servelab.sim.service` — per-request and per-batch CPU work from the profile
* :mod:`~servelab.sim.sweep`, :mod:`~servelab.sim.executors`, :mod:`~servelab.sim.oracle` —
  grids of configurations x workloads, local or Ray, and the best configuration per workload
* :mod:`~servelab.sim.theory`, :mod:`~servelab.sim.stats` — queueing results and batch-means
  intervals the simulator is tested against
* :mod:`~servelab.sim.inputs` — what a simulation takes from the command line (SLOs, workloads
  by name, a configuration from flags over a file), shared by the commands
* :mod:`~servelab.sim.bench` — the simulator's benchmark
* commands (parse, call the library, print): ``cmd_simulate`` (``servelab simulate``),
  ``cmd_sweep`` (``servelab sweep``), ``cmd_bench`` (``servelab bench sim``)
"""
