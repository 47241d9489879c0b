"""The models a server can serve: the zoo's, plus ``noop`` (measures per-request overhead) and
``sleep`` (a service time the tests control)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from servelab.servers.deadlock import DEADLOCK_NAME, DeadlockModel
from servelab.servers.noop import NOOP_NAME, SLEEP_NAME, NoopModel, SleepModel
from servelab.servers.zoo.base import ZooModel

log = logging.getLogger(__name__)


def servable_names() -> list[str]:
    from servelab.servers.zoo import MODELS

    return sorted([*MODELS, NOOP_NAME, SLEEP_NAME])


def get_servable(
    name: str, variant: str = "full", weights_dir: str | Path | None = None, seed: int = 0
) -> ZooModel:
    """A zoo model (or ``noop``) by name, not yet loaded.

    With ``weights_dir``, ``<weights_dir>/<name>.pt`` is loaded when it exists (a ``state_dict``);
    a missing file leaves the seeded weights, with a warning.  Unknown names raise ``ValueError``.
    """
    if name == NOOP_NAME:
        return NoopModel(variant=variant, seed=seed)
    if name == SLEEP_NAME:
        return SleepModel(variant=variant, seed=seed)
    if name == DEADLOCK_NAME:  # debug only: deadlocks on purpose (servers/deadlock.py)
        return DeadlockModel(variant=variant, seed=seed)
    from servelab.servers.zoo import get_model

    weights = None
    if weights_dir is not None:
        path = Path(weights_dir) / f"{name}.pt"
        if path.exists():
            weights = path
        else:
            log.warning("%s: no checkpoint at %s; using seeded weights", name, path)
    try:
        return get_model(name, variant=variant, weights=weights, seed=seed)
    except ValueError:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(servable_names())}") from None


def get_servables(
    names: Sequence[str], variant: str = "full", weights_dir: str | Path | None = None,
    seed: int = 0, kernel: str = "torch",
) -> dict[str, ZooModel]:
    """``{name: model}`` for every name (duplicates removed, order kept), not yet loaded.

    ``kernel`` (``--kernel``: torch, c-release, c-hold, python) swaps in the ffi/ kernels for the
    models that have them (MobileNetV2 preprocessing, the LSTM forward pass); others run as
    they are."""
    models = {n: get_servable(n, variant, weights_dir, seed) for n in dict.fromkeys(names)}
    if kernel == "torch":
        return models
    from servelab.servers.kernel_models import apply_kernel

    return {n: apply_kernel(m, kernel) for n, m in models.items()}
