"""servelab.gateway — the adaptive gateway: one OIP v2 front over warm backends (the live
servers), switched live as the meta-scheduler's policy decides, with explanations and a
dashboard.

Modules, one job each:

* :mod:`.upstream` — keep-alive connections to a backend (raw bytes relayed);
* :mod:`.backends` — backends as ``servelab serve`` subprocesses: start → ready, in-place
  scheduler changes, drain and stop, the bounded warm set and its measured switch times;
* :mod:`.proxy` — the asyncio HTTP front: forwarding, retry, the gateway's own endpoints;
* :mod:`.windows` — the gateway's per-request measurements cut into decision windows
  (reward and features by :mod:`servelab.meta.windows`' definitions);
* :mod:`.controller` — the decision loop and the switch procedure;
* :mod:`.explain` — a one-line reason per switch in OS terms;
* :mod:`.metrics` — Prometheus metrics; ``static/`` — the dashboard page;
* :mod:`.commands` — ``servelab gateway``; :mod:`.bench` — ``servelab bench gateway``.
"""
