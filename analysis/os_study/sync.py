"""Section 6's synchronization rows, live: model-lock contention, and the deadlock watchdog.

* ``locks``: a threads server, two inference threads, two models (MobileNetV2 and the LSTM),
  a 50/50 Poisson mix, once per ``--model-lock`` mode.  Each request's lock wait comes from
  the server's own trace (``lock_wait_s``: the time its batch's thread blocked on the model
  lock, also exported as ``servelab_lock_wait_seconds``); the client latency from the load
  generator.  ``global`` serialises every inference (one core idles whenever the other runs a
  model); ``per-model`` only two batches of the same model.
* ``deadlock``: a threads server (two inference threads) serving the debug-only ``deadlock``
  model (:mod:`servelab.servers.deadlock`: lock A then B, or B then A) with a short
  ``--watchdog-s``.  Two requests of opposite order are sent at once; the study records each
  answer (status, time, error), then a third request with a 2 s deadline (both inference
  threads are now stuck, so it waits in the queue until its deadline: the capacity a deadlock
  costs), and reads the server's log for the watchdog's report and thread stacks.
"""

from __future__ import annotations

import http.client
import json
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from servelab.analysis.os_study import live


def plan_locks(quick: bool, variant: str) -> dict[str, Any]:
    return {"modes": ("global", "per-model") if quick else ("global", "per-model", "none"),
            "rate": 30.0 if variant == "full" else 40.0, "seconds": 3.0 if quick else 10.0,
            "repeats": 2 if quick else 3}


def measure_locks(quick: bool = True, variant: str = "full", **over: Any) -> pd.DataFrame:
    p = {**plan_locks(quick, variant), **over}
    models = ("mobilenet_v2", "lstm_forecaster")
    rows = []
    for mode in p["modes"]:
        with live.server("threads", variant, models, model_lock=mode) as srv:
            live.drive(srv.url, live.workload(dict.fromkeys(models, 0.5), p["rate"], 1.0, 99),
                       variant)
            for rep in range(p["repeats"]):
                seen = len(srv.get("/servelab/trace"))
                rec = live.drive(srv.url, live.workload(dict.fromkeys(models, 0.5), p["rate"],
                                                        p["seconds"], rep), variant)
                trace = pd.DataFrame(srv.get("/servelab/trace")[seen:])
                trace = trace[trace["status"] == "ok"] if len(trace) else trace
                wait = (trace["lock_wait_s"].to_numpy(float) if "lock_wait_s" in trace.columns
                        else np.array([]))
                lat = live.ok_latencies(rec).to_numpy(float)
                errors = rec.loc[rec["status"] != "ok", "error"].dropna()
                if not len(lat):
                    lat = np.array([np.nan])  # none answered: NaN figures, the errors say why
                rows.append({
                    "errors": int((rec["status"] != "ok").sum()),
                    "first_error": str(errors.iloc[0]) if len(errors) else "",
                    "mode": mode, "repeat": rep, "rate": p["rate"], "requests": len(trace),
                    "lock_wait_mean_s": float(wait.mean()) if len(wait) else np.nan,
                    "lock_wait_p99_s": float(np.percentile(wait, 99)) if len(wait)
                    else np.nan,
                    "waited_share": float((wait > 1e-4).mean()) if len(wait) else np.nan,
                    "compute_mean_s": float(trace["compute_s"].mean())
                    if len(trace) else np.nan,
                    "p50_s": float(np.median(lat)), "p99_s": float(np.percentile(lat, 99)),
                    "ok": int(np.isfinite(lat).sum()),
                })
    return pd.DataFrame(rows)


def _post(url: str, order: int, timeout_ms: float | None = None) -> tuple[int, str, float]:
    from servelab.servers.oip import encode_request

    params = {"timeout_ms": timeout_ms} if timeout_ms else None
    body, headers = encode_request({"order": np.array([[float(order)]], np.float32)},
                                   parameters=params)
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    t = time.perf_counter()
    try:
        conn.request("POST", "/v2/models/deadlock/infer", body, headers)
        r = conn.getresponse()
        data = r.read()
        took = time.perf_counter() - t
        try:
            err = str(json.loads(data).get("error", ""))
        except ValueError:
            err = data.decode(errors="replace")[:300]
        return r.status, err, took
    finally:
        conn.close()


def measure_deadlock(quick: bool = True, variant: str = "full", **over: Any) -> pd.DataFrame:
    watchdog_s = float(over.get("watchdog_s", 1.0))
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "server.log"
        with live.server("threads", variant, ("deadlock",), log_path=log_path,
                         watchdog_s=watchdog_s) as srv:
            got: dict[int, tuple[int, str, float]] = {}

            def send(order: int) -> None:
                got[order] = _post(srv.url, order)

            ts = [threading.Thread(target=send, args=(o,)) for o in (0, 1)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(60)
            got[2] = _post(srv.url, 0, timeout_ms=2000)
            metrics = srv.metrics()
        text = log_path.read_text()
    after = text.partition("All thread stacks")[2]
    stacks = len(re.findall(r"^Thread .* \(ident \d+\):$", after, re.MULTILINE))
    stuck = [ln for ln in metrics.splitlines()
             if ln.startswith("servelab_watchdog_stuck_requests_total")]
    rows = []
    for k in (0, 1, 2):
        status, err, took = got.get(k, (0, "no answer", float("nan")))
        rows.append({"request": ("A then B", "B then A", "after, 2 s deadline")[k],
                     "status": status, "seconds": took, "error": err,
                     "watchdog_s": watchdog_s, "stacks_logged": stacks,
                     "watchdog_metric": "; ".join(stuck)})
    return pd.DataFrame(rows)
