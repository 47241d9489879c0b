"""The model zoo: servable models built from their architectures with seeded weights.

``MODELS`` maps each model name to its :class:`~servelab.servers.zoo.base.ZooModel` class;
:func:`get_model` builds one by name.  ``variant="tiny"`` gives a small model through the same
code path (for tests); ``weights=PATH`` loads a local ``state_dict`` instead of seeded weights.
"""

from __future__ import annotations

from pathlib import Path

from servelab.servers.zoo.base import Inputs, StageTimes, TensorSpec, ZooModel
from servelab.servers.zoo.distilbert import DistilBertModel
from servelab.servers.zoo.lstm import LstmForecaster
from servelab.servers.zoo.mobilenet import MobileNetV2Model

MODELS: dict[str, type[ZooModel]] = {
    MobileNetV2Model.name: MobileNetV2Model,
    DistilBertModel.name: DistilBertModel,
    LstmForecaster.name: LstmForecaster,
}


def get_model(
    name: str, variant: str = "full", weights: str | Path | None = None, seed: int = 0
) -> ZooModel:
    """A zoo model by name (not yet loaded; :meth:`ZooModel.load` builds it).

    Raises ``ValueError`` for an unknown name or variant.
    """
    try:
        cls = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(sorted(MODELS))}") from None
    return cls(variant=variant, weights=weights, seed=seed)


__all__ = [
    "MODELS",
    "DistilBertModel",
    "Inputs",
    "LstmForecaster",
    "MobileNetV2Model",
    "StageTimes",
    "TensorSpec",
    "ZooModel",
    "get_model",
]
