"""Plots of a calibration: service time vs input size, interference curves, IPC cost."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from servelab.core.profile import Profile


def plot_profile(profile: Profile, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    # Service time vs input size, per model, split by phase.
    n = len(profile.models)
    if n:
        fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 3.6), squeeze=False)
        for ax, (name, m) in zip(axes[0], profile.models.items(), strict=True):
            pts = m.forward.points or ((1.0, m.forward.fixed_s),)
            hi = max(p[0] for p in pts)
            xs = np.linspace(max(1.0, hi * 0.02), hi * 1.05, 100)
            total = [m.mean_service(x) * 1e3 for x in xs]
            ax.plot(xs, total, label="total (fit)")
            ax.plot(xs, m.forward.evaluate(xs) * 1e3, "--", label="forward")
            ax.plot(xs, m.preprocess.evaluate(xs) * 1e3, ":", label="preprocess")
            if m.forward.points:
                px = [p[0] for p in m.forward.points]
                ax.plot(px, [m.mean_service(x) * 1e3 for x in px], "o", color="C0")
            ax.set_title(f"{name} (GIL share {m.gil_share:.2f})")
            ax.set_xlabel("input size")
            ax.set_ylabel("ms (1 thread, batch 1)")
            ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(folder / "service.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    # Interference.
    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    for kind in ("threads", "processes"):
        t = profile.interference.table(kind)
        ax.plot(range(1, len(t) + 1), t, "o-", label=kind)
    ax.axvline(profile.machine.cores, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("concurrent requests k")
    ax.set_ylabel("slowdown per request (residual)")
    ax.set_title("interference")
    ax.legend()
    fig.tight_layout()
    paths.append(folder / "interference.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    # IPC.
    methods = profile.machine.extra.get("ipc_methods", {})
    if methods:
        fig, ax = plt.subplots(figsize=(4.5, 3.4))
        xs = np.logspace(2, 6.7, 50)
        for name, fit in methods.items():
            ax.loglog(xs, (fit["fixed"] + fit["per_unit"] * xs) * 1e6, label=name)
        ax.set_xlabel("payload bytes")
        ax.set_ylabel("one-way µs")
        ax.set_title("IPC cost (fitted)")
        ax.legend()
        fig.tight_layout()
        paths.append(folder / "ipc.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths
