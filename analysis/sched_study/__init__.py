"""``servelab sched-study``: FIFO vs Priority vs SJF (learned, oracle) vs MLFQ on the mixed
workload, in simulation and on live servers.

The question: how much does each queue policy help when fast requests (MobileNetV2, the LSTM)
share a server with slow ones (DistilBERT), and how does that depend on the concurrency model
and the load?  The study runs the mixed workload (all three models) at fractions of each
configuration's capacity (50%, 80%, 95% by default) under every policy:

* ``fifo``; ``priority`` (the workload's classes: MobileNetV2 0, LSTM 1, DistilBERT 2 —
  Cobham's non-preemptive priorities, FIFO within a class); ``sjf-mean`` (SJF on the per-model
  running mean: what a server can do without a trained predictor); ``sjf-learned`` (SJF on the
  gradient-boosting predictor of :mod:`servelab.analysis.predictor`); ``sjf-oracle`` (SJF on
  the true service time: simulation only — a live server learns a request's service time only
  by running it); ``mlfq`` (stage-boundary preemption, quanta 20 ms / 100 ms, boost every 1 s).

**Simulation** (cheap: the full grid by default): each concurrency model's capacity is the
completion rate of a saturated FIFO run; every (concurrency, load) cell uses one seed for all
policies, so the policies see the same arrivals and the same service times (common random
numbers).  The simulated learned predictor is trained on simulated FIFO traces of the same
configurations (other seeds).

**Live** (a bounded subset by default: one concurrency model, 4 policies, 3 loads, 30 s each):
phase 1 drives a FIFO server with the mixed workload at a rising ladder of rates — its
per-request traces train the learned predictor (with the calibration samples next to the
profile, when there are any) and its highest completion rate is the capacity; phase 2 starts
one server per policy (``--predictor <run>/predictor.joblib`` for ``sjf-learned``) and drives
it at each load with the same seeded workload.  Waits come from the servers' own traces
(``GET /servelab/trace``), so they are the engine's queueing times; the learned predictor is
then scored again on every phase-2 request it never saw in training.

Metrics, per (source, concurrency, load, policy), over the requests that arrived after the
warm-up:

* waiting time ``wait = start - enqueue`` (time to first service; under MLFQ the time a request
  spends requeued after a preemption shows in its sojourn, not in its wait): mean and p99 per
  model class, and overall;
* starvation: the longest wait of the slowest class (the class with the highest mean wait);
* Jain's fairness index over the classes' mean slowdowns, ``J = (sum x)^2 / (n sum x^2)``,
  ``x_c = mean sojourn of class c / mean service time of class c`` (the service time measured
  in the FIFO run of the same cell): 1 when every class is slowed down alike;
* throughput: completions inside the measured window per second.

``--theory`` also checks the simulator's FIFO and SJF mean waits against Pollaczek–Khinchine
and Phipps on the same mixed service-time distribution (:mod:`.theory`).

Results: ``results/sched-study-<stamp>/`` with ``sim.parquet``, ``live.parquet`` (one row per
cell), ``waits.parquet`` (per-request waits), ``live_records.parquet`` (the servers' traces of
phase 2), ``traces/phase1.parquet``, ``predictor.joblib``, ``theory.parquet``, ``waits.png``
and ``summary.json`` (with the command that reproduces the run).

The package, by job (the command itself is :mod:`servelab.analysis.cmd_sched_study`):

* :mod:`.grid` — what is measured: the policies, the classes' short names, each cell's server
  configuration and its workload at a rate;
* :mod:`.metrics` — a run's metrics from its records (waits, starvation, Jain, throughput), the
  per-request waits, live slowdowns against the FIFO cell;
* :mod:`.sim` — the simulated grid: capacities, the simulated learned predictor, the cells;
* :mod:`.drive` — one live server: a cell and the server's trace of it, the warm-up, phase 1's
  ladder;
* :mod:`.live` — the live study: phase 1, the learned predictor (trained, then scored on
  phase 2), phase 2 per policy;
* :mod:`.theory` — the check against Pollaczek–Khinchine and Phipps;
* :mod:`.report` — the table of cells, the targets and the wait plot.
"""
