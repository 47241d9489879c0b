"""The ``servelab`` command: one entry point, one subcommand per job.

Subcommands live next to the code they drive; this table maps each name to the module that
provides it (``add_arguments(parser)`` and ``run(args) -> int``).  Two-word names ("bench sim")
group related commands.  Modules are imported only when their command runs, so
``servelab --help`` stays fast, and a command whose module is absent is not listed.  Library code raises; only this
layer turns exceptions into a message and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import sys
from pathlib import Path

COMMANDS: dict[str, tuple[str, str]] = {
    # In pipeline order: models and workloads, the live side, calibration, simulation, study.
    "models": ("servelab.servers.zoo.cmd_models", "list the model zoo with a measured latency each"),
    "workloads": ("servelab.workloads.cmd_workloads", "list or show the shipped workloads"),
    "serve": ("servelab.servers.cmd_serve", "run a live OIP v2 inference server"),
    "load": ("servelab.loadgen.cmd_load", "open-loop load generator: drive an OIP v2 endpoint"),
    "gil-study": ("servelab.analysis.cmd_gil_study", "threads vs processes scaling of the C kernels"),
    "calibrate": ("servelab.calibrate.cmd_calibrate", "measure this machine into a profile"),
    "simulate": ("servelab.sim.cmd_simulate", "simulate one server configuration under a workload"),
    "sweep": ("servelab.sim.cmd_sweep", "simulate configurations x workloads; the oracle table"),
    "crosscheck": ("servelab.analysis.cmd_crosscheck", "simulated vs live latency and throughput"),
    "validate": ("servelab.analysis.cmd_validate",
                 "the simulator's fidelity grid: sim vs live over setups, pools, schedulers, loads"),
    "predictor": ("servelab.analysis.cmd_predictor", "train or evaluate the learned runtime predictor"),
    "meta train": ("servelab.meta.cmd_train", "train the meta-scheduler's bandits in simulation"),
    "meta eval": ("servelab.analysis.cmd_meta_eval",
                  "bandits vs oracle on held-out shifting workloads, simulated or --live"),
    "best-config": ("servelab.analysis.cmd_best_config", "predict the best concurrency configuration from the traffic"),
    "sched-study": ("servelab.analysis.cmd_sched_study", "FIFO vs Priority vs SJF vs MLFQ, simulated and live"),
    "os-study": ("servelab.analysis.cmd_os_study", "OS costs here: context switches, IPC, memory, locks, GIL, affinity"),
    "demo": ("servelab.analysis.cmd_demo", "the main job: an end-to-end run of the pipeline"),
    "report": ("servelab.analysis.cmd_report", "the study's answers as one report (HTML, Markdown, data)"),
    "gateway": ("servelab.gateway.cmd_gateway",
                "the adaptive gateway: switches live backends as the meta-scheduler decides"),
    # Benchmarks: commands that write results/, never timed tests.
    "bench serve": ("servelab.loadgen.cmd_bench_serve", "benchmark the live servers (throughput, p50/p99)"),
    "bench soak": ("servelab.loadgen.cmd_bench_soak",
                   "2x overload for 10 minutes, a worker killed, a SIGTERM drain: the verdict"),
    "bench load": ("servelab.loadgen.cmd_bench", "benchmark the load generator's capacity and lag"),
    "bench sim": ("servelab.sim.cmd_bench", "benchmark the simulator against bare SimPy"),
    "bench bandits": ("servelab.meta.cmd_bench_bandits", "time each bandit policy's select + update"),
    "bench gateway": ("servelab.gateway.cmd_bench", "the gateway's overhead: a backend direct vs through it"),
}


def _module_exists(dotted: str) -> bool:
    """Whether a module's file exists, without importing the packages in between (those may
    import torch, which would make ``--help`` slow)."""
    parts = dotted.split(".")
    spec = importlib.util.find_spec(".".join(parts[:2]))
    if spec is None or not spec.submodule_search_locations:
        return False
    for base in spec.submodule_search_locations:
        path = Path(base).joinpath(*parts[2:])
        if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
            return True
    return False


def available() -> dict[str, tuple[str, str]]:
    """The commands whose modules are installed."""
    return {n: v for n, v in COMMANDS.items() if _module_exists(v[0])}


def build_parser() -> argparse.ArgumentParser:
    from servelab import __version__

    parser = argparse.ArgumentParser(
        prog="servelab",
        description="Measure, simulate and learn how threads, processes and asyncio change "
        "the latency and throughput of ML inference serving.",
    )
    parser.add_argument("--version", action="version", version=f"servelab {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, list[str]] = {}
    for name, (_, helptext) in available().items():
        head, _, tail = name.partition(" ")
        if tail:
            groups.setdefault(head, []).append(tail)
        else:
            sub.add_parser(name, help=helptext, add_help=False)
    for head, tails in groups.items():
        sub.add_parser(head, help=f"{head} {'|'.join(tails)}", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    # First pass: find the command; its own parser is built only once we know which.
    top, rest = parser.parse_known_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if top.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if top.command is None:
        parser.print_help()
        return 0
    name = top.command
    if name not in COMMANDS:  # a group: the next word picks the command
        tails = [n.partition(" ")[2] for n in available() if n.startswith(name + " ")]
        if not rest or rest[0] not in tails:
            print(f"usage: servelab {name} {{{','.join(tails)}}} ...", file=sys.stderr)
            return 2
        name = f"{name} {rest.pop(0)}"
    top.command = name
    module_name, helptext = COMMANDS[name]
    module = importlib.import_module(module_name)
    sub = argparse.ArgumentParser(prog=f"servelab {top.command}", description=helptext)
    module.add_arguments(sub)
    args = sub.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as exc:
        if top.verbose:
            raise
        print(f"servelab {top.command}: error: {exc}", file=sys.stderr)
        return 2


def entry() -> None:
    """The console script: :func:`main`, then :func:`exit_now`."""
    exit_now(main())


def exit_now(code: int) -> None:
    """Exit without tearing the interpreter down.

    A command that imported torch, torchvision and transformers spends seconds after its last
    line freeing every module and tensor one by one (4 s measured for ``serve`` with the three
    zoo models on this 2-core machine) -- time nobody waits for on purpose, and a server restart
    (calibration, validate, the gateway's backend switch) pays it each time.  What a normal
    exit does first still happens: non-daemon threads are waited for, the exit handlers run
    (``atexit``: multiprocessing joins its children, temporary folders go), then logging and
    the standard streams are flushed; only the finalization of modules is skipped.
    """
    import atexit
    import threading

    try:
        for t in threading.enumerate():
            if t is not threading.current_thread() and not t.daemon:
                t.join()
        atexit._run_exitfuncs()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


if __name__ == "__main__":
    exit_now(main())
