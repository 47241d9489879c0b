"""The model zoo: servable models built from their architectures with seeded weights.

``MODELS`` maps each model name to its :class:`~servelab.servers.zoo.base.ZooModel` class;
:func:`get_model` builds one by name.  ``variant="tiny"`` gives a small model through the same
code path (for tests); ``weights=PATH`` loads a local ``state_dict`` instead of seeded weights.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from servelab.servers.zoo.base import Inputs, StageTimes, TensorSpec, ZooModel


class _LazyRegistry(Mapping[str, type[ZooModel]]):
    """Name -> model class, importing a model's module only when it is first asked for
    (``transformers`` alone takes over a second to import; a worker serving MobileNet should
    not pay it)."""

    def __init__(self, table: Mapping[str, str]):
        self._table = dict(table)
        self._loaded: dict[str, type[ZooModel]] = {}

    def __getitem__(self, name: str) -> type[ZooModel]:
        if name not in self._loaded:
            module, _, cls = self._table[name].partition(":")
            self._loaded[name] = getattr(importlib.import_module(module), cls)
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)


MODELS: Mapping[str, type[ZooModel]] = _LazyRegistry({
    "mobilenet_v2": "servelab.servers.zoo.mobilenet:MobileNetV2Model",
    "distilbert": "servelab.servers.zoo.distilbert:DistilBertModel",
    "lstm_forecaster": "servelab.servers.zoo.lstm:LstmForecaster",
})


_CLASS_NAMES = {
    "MobileNetV2Model": "mobilenet_v2", "DistilBertModel": "distilbert",
    "LstmForecaster": "lstm_forecaster",
}


def __getattr__(name: str) -> Any:
    """The model classes by their class names, imported on first use."""
    if name in _CLASS_NAMES:
        return MODELS[_CLASS_NAMES[name]]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_model(
    name: str, variant: str = "full", weights: str | Path | None = None, seed: int = 0
) -> ZooModel:
    """A zoo model by name (not yet loaded; :meth:`ZooModel.load` builds it).

    Raises ``ValueError`` for an unknown name or variant.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(sorted(MODELS))}")
    return MODELS[name](variant=variant, weights=weights, seed=seed)


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
