"""The learned runtime predictor: recovers a known cost function and drives SJF correctly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from servelab.analysis import predictor as P
from servelab.core import learned
from servelab.core.learned import Context, snap
from servelab.core.policies import Sjf
from servelab.core.requests import Request


@pytest.fixture(scope="module", autouse=True)
def one_openmp_thread():
    """Training and prediction on one OpenMP thread: on a busy 2-core machine the boosting's
    OpenMP barriers spin (one suite run: this module's fixture 33 s and one test 101 s, against
    under 2 s idle), as sched_study notes where it trains."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def trained():
    fit = P.synthetic_traces(12000, seed=1)
    return P.train(fit, seed=0)


def test_recovers_known_cost_function(trained):
    held_out = P.synthetic_traces(4000, seed=2)
    scores = P.evaluate(trained, held_out)
    # 3% log-normal noise puts the floor at about 2.4% MAPE; a model that ignored input size,
    # batch or CPU utilisation would sit far above 6%.
    assert scores["overall"] < 6.0
    for m in ("mobilenet_v2", "distilbert", "lstm_forecaster"):
        assert scores[m] < 6.0
    # And it really learned the size dependence: DistilBERT at 500 words ~ 6x 50 words.
    short = Request(id=0, model="distilbert", input_size=50)
    long = Request(id=1, model="distilbert", input_size=500)
    ratio = trained.predict(long) / trained.predict(short)
    truth = (0.02 + 0.0014 * 500) / (0.02 + 0.0014 * 50)
    assert ratio == pytest.approx(truth, rel=0.1)


def test_ignoring_a_feature_is_worse():
    fit, held = P.synthetic_traces(8000, seed=3), P.synthetic_traces(3000, seed=4)
    full = P.evaluate(P.train(fit), held)["overall"]
    blind = P.evaluate(P.train(fit.assign(cpu_util=0.0)), held)["overall"]
    assert blind > full + 3.0


def test_sjf_with_learned_predictor_orders_a_known_queue(trained):
    trained.context = Context(cpu_util=0.2)
    policy = Sjf(trained)
    reqs = [
        Request(id=0, model="distilbert", input_size=400),  # ~0.58 s
        Request(id=1, model="lstm_forecaster", input_size=96),  # ~2.7 ms
        Request(id=2, model="mobilenet_v2", input_size=32),  # ~9 ms
        Request(id=3, model="distilbert", input_size=20),  # ~48 ms
        Request(id=4, model="lstm_forecaster", input_size=720),  # ~10 ms
    ]
    for r in reqs:
        policy.push(r)
    assert [policy.pop().id for _ in reqs] == [1, 2, 4, 3, 0]


def test_predict_matches_vectorised_rows_and_is_cached(trained):
    r = Request(id=0, model="lstm_forecaster", input_size=336, batch_size=2, queue_len_at_arrival=5)
    one = trained.predict(r)
    rows = np.asarray([trained.features(r)])
    assert one == pytest.approx(float(trained.predict_rows(rows)[0]), rel=1e-9)
    n_tables = len(trained._tables)
    trained.predict(Request(id=1, model="distilbert", input_size=77, batch_size=2,
                            queue_len_at_arrival=6))  # same context bucket
    assert len(trained._tables) == n_tables


def test_save_load_round_trip(tmp_path, trained):
    path = tmp_path / "p.joblib"
    learned.save(trained, path)
    again = learned.load(path, context=trained.context)
    r = Request(id=0, model="distilbert", input_size=123)
    assert again.predict(r) == pytest.approx(trained.predict(r))
    with pytest.raises(FileNotFoundError):
        learned.load(tmp_path / "missing.joblib")


def test_prepare_reads_live_records():
    df = pd.DataFrame({
        "model": ["a", "a", "b"], "input_size": [1, 2, 3], "start": [0.0, 1.0, 2.0],
        "end": [0.5, 1.2, 2.1], "status": ["ok", "ok", "timeout"],
        "queue_len_at_arrival": [0, 3, 1], "cpu_util_at_arrival": [0.1, 0.5, 0.2],
    })
    out = P.prepare(df)
    assert len(out) == 2 and out["service_time"].tolist() == pytest.approx([0.5, 0.2])
    assert out["queue_len"].tolist() == [0, 3] and "cpu_util" in out
    with pytest.raises(ValueError, match="service_time"):
        P.prepare(pd.DataFrame({"model": ["a"], "input_size": [1]}))


def test_snap_picks_nearest_in_ratio():
    grid = [1.0, 10.0, 100.0]
    assert snap(grid, 3.0) == 1.0 and snap(grid, 4.0) == 10.0
    assert snap(grid, 0.1) == 1.0 and snap(grid, 1e6) == 100.0
