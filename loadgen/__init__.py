"""servelab.loadgen — the open-loop load generator, its latency accounting, and a stub server.

Closed-loop tools wait for each response before sending the next request, so when the server
stalls they stop offering load and time the delayed requests from their late sends: the stall
all but vanishes from the percentiles (coordinated omission).  This generator is open loop: a
:class:`~servelab.core.workload.WorkloadSpec` is sampled once into a schedule of intended send
times, every request's bytes are prebuilt, and each request goes out at its time whatever the
server does.  Latency is measured from the **intended** send time.

Modules, one concern each:

* :mod:`.schedule` — the workload sampled into columns; ``--rate`` / ``--duration`` overrides;
  round-robin shares for several sender processes.
* :mod:`.payloads` — one complete HTTP request per distinct (model, input size, priority,
  timeout), from the zoo's ``make_input`` and the OIP codec (:mod:`servelab.servers.oip`).
* :mod:`.http` — a minimal keep-alive HTTP/1.1 client transport (one write per request; the
  completion time is read when the last byte arrives).
* :mod:`.generator` — the open-loop sender: a timer thread wakes the event loop at each
  intended time, sends go out on idle connections, one record per request, client timeouts,
  ``not_sent`` when it falls ``max_lag`` behind.
* :mod:`.processes` — one process, or N ``spawn`` processes sharing one start time (a sender
  process that dies or wedges has its share recorded ``error``, never a hang).
* :mod:`.target` — before a run, the check that the target serves the workload's models.
* :mod:`.accounting` — records in the shared per-request schema and the summary (percentiles
  over all post-warm-up samples, status counts, target vs achieved rate, lag and its flag).
* :mod:`.runner` / :mod:`.commands` — ``servelab load`` (library entry: :func:`run_load`).
* :mod:`.bench` — ``servelab bench load``: achieved rate and lag against the stub.
* :mod:`.serve_bench` — ``servelab bench serve``: the live servers' capacity ladders; with
  ``--peers``, servelab next to the servers of :mod:`.peers` (naive FastAPI + torch, Ray Serve).
* :mod:`.soak` — ``servelab bench soak``: 2x overload for 10 minutes with a worker killed and a
  SIGTERM drain; :mod:`.soak_monitor` (RSS of the process tree, the faults), :mod:`.soak_verdict`
  (the targets from the records), :mod:`.soak_plot` (the figure).
* :mod:`.stub` — the stub OIP server (delays, a stall window, chosen statuses, and modes
  that stop reading, stop answering, reset or close connections) for tests and the benchmark.
* :mod:`.closedloop` — a naive closed-loop driver, to show what it misses.
* ``locustfile.py`` — the same workloads for Locust (closed loop; see its docstring).

Every scheduled request ends in exactly one status: ``ok`` (2xx), ``rejected`` (503 / 429),
``timeout`` (504 / 408 or no answer within ``--timeout``), ``error`` (refused or broken
connection, other statuses) or ``not_sent`` (the send would have been more than ``--max-lag``
late, or the run was aborted).  A run always ends — by its last intended send + ``--max-lag``
+ ``--timeout`` + one second of grace, whatever the server does (see :mod:`.generator`).
"""
