"""The servers' hook: zoo models whose request path runs on a chosen ffi kernel.

``apply_kernel(model, kind)`` returns a model to serve in place of ``model``:

* ``mobilenet_v2`` -> :class:`KernelMobileNet`: ``preprocess`` (uint8 HWC -> normalized float32
  CHW, batched) runs on the kernel; the convolutions stay torch;
* ``lstm_forecaster`` -> :class:`KernelLstm`: the forward pass (every 96-step chunk stage and the
  head stage) runs on the kernel, with the weights of the model's torch module; preprocessing
  (per-window standardization) and postprocessing stay as they are;
* any other model, or ``kind == "torch"``: the model itself (a kernel model is turned back into
  its plain class).

The returned objects are ordinary subclasses of the zoo classes: same ``name``, schema, stages,
``isinstance`` checks, picklable for process servers (the kernel is looked up by name in each
process).  They share the given model's state, including an already loaded module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from servelab.ffi.kernels import KERNELS, LstmWeights, get_kernels
from servelab.servers.zoo.base import Inputs, ZooModel, stack_requests
from servelab.servers.zoo.lstm import CHUNK, Forecast, LstmForecaster, WindowBatch
from servelab.servers.zoo.mobilenet import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    IMAGE_SIDE,
    MobileNetV2Model,
)

log = logging.getLogger(__name__)


class KernelMobileNet(MobileNetV2Model):
    """``mobilenet_v2`` with preprocessing on kernel ``self.kernel``."""

    kernel: str = "torch"

    def preprocess(self, inputs: Sequence[Inputs]) -> Any:
        import torch

        images = stack_requests(inputs, "image", dtype=np.uint8)
        if images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE, 3):
            raise ValueError(
                f"image must be (N, {IMAGE_SIDE}, {IMAGE_SIDE}, 3) uint8, got {images.shape}"
            )
        x = get_kernels(self.kernel).preprocess_images(images, CIFAR10_MEAN, CIFAR10_STD)
        return torch.from_numpy(x)


class KernelLstm(LstmForecaster):
    """``lstm_forecaster`` with its forward pass on kernel ``self.kernel``."""

    kernel: str = "torch"

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_kernel_weights", None)  # re-packed from the module on first use
        return state

    def kernel_weights(self) -> LstmWeights:
        """The module's weights, packed once (a concurrent first call may pack twice)."""
        w = self.__dict__.get("_kernel_weights")
        if w is None or w.module is not self.load():
            w = LstmWeights.from_module(self.load())
            self.__dict__["_kernel_weights"] = w
        return w

    def stages(self, batch: WindowBatch) -> list[Callable[[Any], Any]]:
        import torch

        kernels, w = get_kernels(self.kernel), self.kernel_weights()
        x = batch.x.numpy() if hasattr(batch.x, "numpy") else np.asarray(batch.x)

        def chunk_stage(chunk: np.ndarray) -> Callable[[Any], Any]:
            def run(state: Any) -> tuple[np.ndarray, np.ndarray]:
                if isinstance(state, WindowBatch):
                    state = kernels.lstm_state(w, chunk.shape[0])
                return kernels.lstm_steps(w, chunk, state)

            return run

        def head(state: tuple[np.ndarray, np.ndarray]) -> Forecast:
            y = torch.from_numpy(kernels.lstm_head(w, state))
            return Forecast(y, batch.mean, batch.std)

        chunks = [x[:, i : i + CHUNK] for i in range(0, x.shape[1], CHUNK)]
        return [chunk_stage(c) for c in chunks] + [head]

    def forward_unstaged(self, batch: WindowBatch) -> Forecast:
        import torch

        x = batch.x.numpy() if hasattr(batch.x, "numpy") else np.asarray(batch.x)
        y = get_kernels(self.kernel).lstm_forward(self.kernel_weights(), x)
        return Forecast(torch.from_numpy(y), batch.mean, batch.std)


_WRAPPERS: dict[type, type] = {MobileNetV2Model: KernelMobileNet, LstmForecaster: KernelLstm}


def _rebuild(model: ZooModel, cls: Any) -> Any:
    new = cls.__new__(cls)
    new.__dict__.update(model.__dict__)
    new.__dict__.pop("_kernel_weights", None)
    new.__dict__.pop("kernel", None)
    return new


def apply_kernel(model: ZooModel, kind: str, strict: bool = False) -> Any:
    """``model`` served with kernel ``kind`` (see the module docstring).

    The kernel is resolved now, so a missing compiled build is reported (a warning and the NumPy
    fallback, or :class:`~servelab.ffi._loader.KernelUnavailable` when ``strict``) at server
    start, not on the first request.  Raises ``ValueError`` for an unknown kind.
    """
    if kind not in KERNELS:
        raise ValueError(f"unknown kernel {kind!r}; valid: {', '.join(KERNELS)}")
    base = next((b for b in _WRAPPERS if isinstance(model, b)), None)
    if base is None:
        log.debug("%s: no %s kernel for this model; it runs unchanged", model.name, kind)
        return model
    if kind == "torch":
        return _rebuild(model, base) if type(model) is _WRAPPERS[base] else model
    get_kernels(kind, strict=strict)
    new = _rebuild(model, _WRAPPERS[base])
    new.kernel = kind
    return new
