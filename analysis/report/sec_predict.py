"""Section 3: can we predict which concurrency model performs best from request characteristics?

The training set (simulated workloads x configurations, the slow part) goes through
``ctx.cached``; the fits, scores, rules and the live check (every stored ``servelab validate``
run) take seconds and are redone each report.  ``servelab best-config`` with the same profile
and ``--quick`` (or not) reproduces the numbers.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from servelab.analysis.best_config import live as L
from servelab.analysis.best_config import study as S
from servelab.analysis.best_config.features import label
from servelab.analysis.best_config.space import Draw
from servelab.analysis.report.section import Context, Figure, Section, Table

KEY = "predict"
TITLE = "Can we predict which concurrency model performs best from request characteristics?"
ORDER = 3

TINY = S.Settings(samples=16, draw=Draw(requests=40, duration_s=(2.0, 4.0)),
                  keys=("threads-w2-fifo", "processes-w2-fifo", "async-inline-w2-fifo"), folds=4)
"""The tests' cut (``variant="tiny"``): three configurations, sixteen short workloads."""

LIVE_ROOT: Path | None = None
"""Where the validate runs are looked for (None: ``servelab.results.RESULTS_ROOT``)."""


def settings_for(ctx: Context) -> S.Settings:
    if ctx.variant == "tiny":
        return TINY
    return S.QUICK if ctx.quick else S.FULL


def build(ctx: Context) -> Section:
    from servelab.core.profile import load_profile
    from servelab.results import RESULTS_ROOT
    from servelab.sim.executors import make_executor

    notes: list[str] = []
    path = ctx.profile or S.newest_profile(RESULTS_ROOT / "profiles")
    profile = load_profile(path)
    if path is None:
        notes.append("No calibrated profile: the design-doc default profile was simulated "
                     "(servelab calibrate --quick gives this machine's).")
    settings = settings_for(ctx)
    tiny = ctx.variant == "tiny"

    def compute() -> pd.DataFrame:
        ctx.log(f"  predict: simulating {settings.samples} workloads x "
                f"{len(settings.configs(profile))} configurations")
        with make_executor("local", jobs=1 if tiny else None) as ex:
            return S.simulate_samples(profile, settings, ex,
                                      ctx.cache / f"predict-sweep-{profile.digest}",
                                      progress=False)

    samples = ctx.cached("predict-samples", compute,
                         meta={"profile": profile.digest, **settings.meta()})
    root = LIVE_ROOT if LIVE_ROOT is not None else RESULTS_ROOT
    runs = L.find_runs(root)
    a = S.analyse(samples, profile, L.load_points(runs), seed=settings.seed, k=settings.folds,
                  trees=20 if tiny else 100, repeats=1 if tiny else 3)
    figs = S.figures(a, ctx.out, prefix=f"{KEY}-")
    cmd = "servelab best-config" + (" --quick" if ctx.quick or tiny else "") + (
        f" --profile {path}" if path is not None else "") + (
        f" --samples {settings.samples}" if tiny else "")
    return Section(key=KEY, title=TITLE, answer=a.answer,
                   figures=_figures(a, figs, cmd), tables=_tables(a, cmd),
                   notes=notes + _notes(a, runs, settings, calibrated=path is not None))


def _figures(a: S.Analysis, figs: dict[str, Path], cmd: str) -> list[Figure]:
    cv = a.cv.set_index("model")
    b, maj = cv.loc[a.best_learner], cv.loc["majority"]
    ls = a.live_summary
    fidelity = None
    if ls.get("decisions"):
        lv = ls[a.best_learner]
        fidelity = (f"live held-out ({ls['decisions']} decisions): the {a.best_learner} earns "
                    f"{lv['share']:.1%} of the live-best reward (sim CV {b['share']:.1%}); the "
                    f"simulator's own pick {ls['simulator']['share']:.1%}")
    shares = a.share_table()
    imp = a.importance
    top = imp.iloc[0]  # groups sort first
    name = f"the {top['feature']}" if top.get("kind") == "group" else label(str(top["feature"]))
    conf = a.confusion()
    return [
        Figure(
            name=f"{KEY}-shares", png=figs["shares"], data=shares,
            claim=(f"A wrong pick costs little: out of fold the {a.best_learner} is exactly right "
                   f"on {b['accuracy']:.0%} of simulated workloads but earns {b['share']:.1%} of "
                   f"the best reward (10th percentile {b['share_p10']:.1%}; always-"
                   f"{a.samples['best'].value_counts().index[0]}: {maj['share']:.1%})."),
            command=cmd, fidelity=fidelity,
            spread="bars: mean over workloads (or live decisions); triangles: 10th percentile"),
        Figure(
            name=f"{KEY}-confusion", png=figs["confusion"], data=conf.reset_index(),
            claim=(f"Most confusions are between configurations of one family "
                   f"(setup right {b['setup_accuracy']:.0%} vs exact {b['accuracy']:.0%}); "
                   f"the {a.best_learner} is right {S.decisive(b['decisive_accuracy'])}."),
            command=cmd),
        Figure(
            name=f"{KEY}-importance", png=figs["importance"], data=imp,
            claim=(f"{name} drives the choice most: shuffling it costs "
                   f"{top['accuracy_drop']:.1%} accuracy and {top['share_drop']:.2%} reward "
                   f"share; the tree's first split is {a.root_split}."),
            command=cmd, spread="error bars: sd over 5 folds x 3 shuffles"),
    ]


def _tables(a: S.Analysis, cmd: str) -> list[Table]:
    rules = pd.DataFrame([{"rule": r["text"], "config": r["config"], "workloads": r["samples"],
                           "purity": round(r["purity"], 3)} for r in a.rules[:8]])
    return [
        Table(name=f"{KEY}-rules", data=rules, command=cmd,
              caption="The decision tree's largest leaves as rules (simulated training set)."),
        Table(name=f"{KEY}-cv", data=a.cv, command=cmd,
              caption="Cross-validated accuracy (exact, where decisive, setup only) and reward "
                      "share per learner."),
    ]


def _notes(a: S.Analysis, runs: list[Path], settings: S.Settings,
           calibrated: bool = True) -> list[str]:
    out = [f"Near-ties dominate: the median reward margin of the best over the runner-up is "
           f"{a.samples['margin'].median():.1%} and only "
           f"{(a.samples['margin'] >= S.DECISIVE).mean():.0%} of workloads are decisive "
           f"(>= {S.DECISIVE:.0%}), so exact accuracy understates how good the picks are."]
    ls = a.live_summary
    if ls.get("decisions"):
        out.append(f"Live check: {ls['decisions']} decisions from {len(runs)} validate runs on "
                   f"{', '.join(ls['workloads'])}, each restricted to the configurations "
                   f"measured there; live margins are small too (median "
                   f"{ls['median_live_margin']:.1%}), near the run-to-run noise.")
    else:
        out.append("No live validate run found under results/: run servelab validate --quick "
                   "(or servelab best-config --live) for the held-out live check.")
    profile = ("one calibrated profile of this machine, so the answer is this machine's"
               if calibrated else "the design-doc default profile (not this machine's)")
    out.append(f"Training: {settings.samples} simulated workloads, scheduler(s) "
               f"{', '.join(settings.schedulers)}; {profile}.")
    return out

