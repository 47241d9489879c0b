"""What the gateway costs — the same load on a backend directly and through the gateway, side
by side (the library behind ``servelab bench gateway``, gateway/cmd_bench.py).

For each rate in ``--rates`` two legs run with the same open-loop schedule (the load
generator's library API, 127.0.0.1 only): *direct* against a fresh backend (``servelab
serve``), *gateway* against ``servelab gateway`` fronting a fresh backend of the same
configuration (one arm, so it never switches).  Every process is separate — generator, gateway,
backend — so none shares a GIL with what it measures.  The table gives p50 / p99 and
throughput per leg and the gateway's added p50 in ms (target: <= 1 ms, and throughput not
below the backend's).  Results: ``results/bench-gateway-<stamp>/summary.json`` (plus each
leg's records), and the line that reproduces them.
"""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from servelab.core.config import ServerConfig, opt, to_flags
from servelab.core.workload import WorkloadSpec
from servelab.loadgen.payloads import servable_make_input
from servelab.loadgen.runner import LoadConfig, run_load
from servelab.servers.base import ServeOptions
from servelab.servers.launch import ServerProcess

MAX_LEG_S = 30.0


@dataclass(frozen=True)
class BenchGatewayConfig:
    """The flags of ``servelab bench gateway``."""

    concurrency: str = opt("threads", "backend concurrency model", ("threads", "processes",
                                                                   "async"))
    workers: int = opt(2, "backend workers")
    model: str = opt("noop", "model every request asks for (noop: the hop's cost alone)")
    rates: tuple[float, ...] = opt((100.0, 400.0), "offered rates (req/s), one pair of legs each")
    duration: float = opt(10.0, f"seconds per leg (at most {MAX_LEG_S:g})")
    warmup: float = opt(1.0, "seconds excluded from the figures")
    variant: str = opt("tiny", "backend model size", ("full", "tiny"))
    out: str | None = opt(None, "output folder (default: results/bench-gateway-<stamp>)")

    def __post_init__(self) -> None:
        if not 0 < self.duration <= MAX_LEG_S:
            raise ValueError(f"duration must be in (0, {MAX_LEG_S:g}] s, got {self.duration}")
        if not self.rates or min(self.rates) <= 0:
            raise ValueError("rates must be > 0")


class GatewayProcess:
    """``servelab gateway`` as a subprocess on a free port (``with`` it; SIGTERM drains)."""

    def __init__(self, arms_file: Path, variant: str, log: Path):
        self.cmd = [sys.executable, "-m", "servelab.cli", "gateway", "--arms", str(arms_file),
                    "--policy", "ucb1", "--port", "0", "--variant", variant]
        self.log = log
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> GatewayProcess:
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "ready at " not in line:
            self.__exit__()
            raise RuntimeError(f"gateway did not start: {shlex.join(self.cmd)}; see {self.log}")
        self.url = line.split("ready at ", 1)[1].split()[0]
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _leg(target: str, spec: WorkloadSpec, rate: float, cfg: BenchGatewayConfig,
         out: Path) -> dict[str, Any]:
    load = LoadConfig(target=target, rate=rate, duration=cfg.duration, warmup=cfg.warmup,
                      out=str(out), progress=False)
    s = run_load(load, spec=spec, make_input=servable_make_input(cfg.variant)).summary
    gen, lat = s["generator"], s["latency_s"]
    return {"rate": rate, "achieved_rate": gen["achieved_rate"], "ok": gen["counts"]["ok"],
            "requests": gen["scheduled"], "counts": gen["counts"], "p50_s": lat["p50"],
            "p99_s": lat["p99"], "throughput": s["throughput"],
            "run": str(out)}


def bench(cfg: BenchGatewayConfig) -> dict[str, Any]:
    from servelab.reproduce import run_metadata
    from servelab.results import new_run_dir, write_json

    out = Path(cfg.out) if cfg.out else new_run_dir("bench-gateway")
    out.mkdir(parents=True, exist_ok=True)
    config = ServerConfig(concurrency=cfg.concurrency, workers=cfg.workers, models=(cfg.model,))
    arms_file = out / "arms.json"
    arms_file.write_text(json.dumps([config.to_dict()]))
    spec = WorkloadSpec.from_dict({"name": f"{cfg.model}-poisson", "duration": cfg.duration,
                                   "arrival": {"kind": "poisson", "rate": cfg.rates[0]},
                                   "mix": {cfg.model: 1.0}, "seed": 11})
    rows = []
    with ServerProcess(config, ServeOptions(port=0, variant=cfg.variant)) as backend:
        direct = {r: _leg(backend.url, spec, r, cfg, out / f"direct-{r:g}") for r in cfg.rates}
    with GatewayProcess(arms_file, cfg.variant, out / "gateway.log") as gw:
        via = {r: _leg(gw.url, spec, r, cfg, out / f"gateway-{r:g}") for r in cfg.rates}
    for r in cfg.rates:
        d, g = direct[r], via[r]
        rows.append({"rate": r, "direct": d, "gateway": g,
                     "added_p50_s": g["p50_s"] - d["p50_s"], "added_p99_s": g["p99_s"] - d["p99_s"],
                     "throughput_ratio": g["throughput"] / d["throughput"]
                     if d["throughput"] else math.nan})
    command = shlex.join(["servelab", "bench", "gateway", *to_flags(replace(cfg, out=None))])
    result = {"kind": "bench-gateway", **run_metadata(command), "config": asdict(cfg),
              "backend": config.to_dict(), "rows": rows}
    write_json(out / "summary.json", result)
    result["path"] = str(out)
    return result


def format_table(result: dict[str, Any]) -> str:
    lines = [f"{'rate/s':>7} {'leg':>8} {'achieved/s':>10} {'ok':>6} {'p50 ms':>8} "
             f"{'p99 ms':>8} {'thr/s':>7}"]
    for row in result["rows"]:
        for leg in ("direct", "gateway"):
            x = row[leg]
            lines.append(f"{row['rate']:>7.0f} {leg:>8} {x['achieved_rate']:>10.1f} "
                         f"{x['ok']:>6} {x['p50_s'] * 1e3:>8.3f} {x['p99_s'] * 1e3:>8.3f} "
                         f"{x['throughput']:>7.1f}")
        lines.append(f"{'':>7} {'added':>8} p50 {row['added_p50_s'] * 1e3:+.3f} ms, "
                     f"throughput ratio {row['throughput_ratio']:.3f}")
    return "\n".join(lines)
