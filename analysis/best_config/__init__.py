"""``servelab best-config``: can the best concurrency model be predicted from the traffic?

* :mod:`.space` — the configurations compared (setup x pool size x scheduler, from the
  meta-scheduler's arms) and the random single-phase workloads drawn to train on;
* :mod:`.features` — what a workload looks like from outside the server: rate, model mix, mean
  input sizes, burstiness, offered CPU load;
* :mod:`.dataset` — every workload simulated under every configuration (the sweep's points and
  executors), labelled by its best configuration, runner-up and reward margin;
* :mod:`.classify` — a decision tree, a random forest and gradient boosting, cross-validated:
  accuracy and the share of the best reward the predicted configuration gets; permutation
  importances;
* :mod:`.rules` — the tree's leaves as rules in OS terms;
* :mod:`.live` — the held-out check on live measurements (``servelab validate``'s points) and a
  small fresh live run;
* :mod:`.plots`, :mod:`.study` — the figures and the whole analysis, written to a run folder.
"""
