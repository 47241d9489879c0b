"""The simulated grid: SJF beats FIFO, the learned predictor tracks the oracle, MLFQ shields the
fast classes at the slow one's expense (and the report reads the cells)."""

from __future__ import annotations

from threadpoolctl import threadpool_limits

from servelab.analysis.sched_study import report as R
from servelab.analysis.sched_study.sim import run_sim
from servelab.core.profile import default_profile

MODELS = ("mobilenet_v2", "lstm_forecaster", "distilbert")


def test_simulated_grid_sjf_beats_fifo_and_learned_tracks_oracle(mixed):
    with threadpool_limits(1):
        sim = run_sim(default_profile(), mixed, ["processes"], [0.8],
                      ["fifo", "sjf-learned", "sjf-oracle", "mlfq"], workers=2,
                      requests=4000, seed=0)
    assert sim.predictor_mape["overall"] < 10.0
    (t,) = R.targets(sim.cells, MODELS)
    assert t["sjf-learned_cut"] >= 0.2 and t["sjf-oracle_cut"] >= 0.2
    assert t["learned_over_oracle"] < 1.15
    assert t["mlfq_fast_wait_cut"] > 0  # preemption shields the fast classes...
    assert t["mlfq_slow_sojourn_change"] > 0  # ...at DistilBERT's expense
    assert set(sim.waits["policy"]) == {"fifo", "sjf-learned", "sjf-oracle", "mlfq"}
    assert "sim" in R.format_cells(sim.cells, MODELS)
