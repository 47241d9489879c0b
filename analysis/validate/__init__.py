"""``servelab validate``: the simulator's fidelity grid — simulated vs live, point by point.

* :mod:`.grid` — what is measured: setups x pool sizes x schedulers x workloads x loads;
* :mod:`.backend` — the live side (a server subprocess and the load generator) behind one
  small interface, and a simulated stand-in for tests;
* :mod:`.runner` — capacity ladders, the common rates, the points, resumable on disk
  (:mod:`.store`: the run folder);
* :mod:`.metrics` — errors, saturation, rank correlation, top-pick share, noise, targets;
* :mod:`.attribution` — which modelled cost would have to change, by how much;
* :mod:`.plots`, :mod:`.report` — the scatter and rank plots, the printed tables;
* :mod:`.command` — the command.
"""
