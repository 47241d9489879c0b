"""The interface every model in the zoo implements.

A zoo model is built from its architecture with seeded weights (these machines cannot download
weights); ``weights=PATH`` loads a local ``state_dict`` checkpoint instead.  Each request goes
through ``preprocess -> forward -> postprocess``; ``forward`` can also be run stage by stage
(``run_stages``) so that a preemptive scheduler (MLFQ) can pause a request between stages.

Inputs and outputs follow the Open Inference Protocol v2: one ``TensorSpec`` per named tensor,
with an OIP datatype (``UINT8``, ``FP32``, ``BYTES`` ...) and a shape in which ``-1`` is a
variable dimension.  The first dimension of every tensor is the batch dimension.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

Inputs = dict[str, np.ndarray]
"""One request's (or one batch's) named input tensors, batch dimension first."""

OIP_TO_NUMPY: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}
"""OIP v2 datatype -> numpy dtype (``BYTES`` tensors are object arrays of ``bytes``)."""


@dataclass(frozen=True)
class TensorSpec:
    """An OIP v2 tensor declaration: name, datatype and shape (-1 = variable)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_oip(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @property
    def numpy_dtype(self) -> Any:
        return OIP_TO_NUMPY[self.datatype]

    def check(self, array: np.ndarray) -> None:
        """Raise ``ValueError`` unless ``array`` has this spec's dtype, rank and fixed dims."""
        if np.asarray(array).dtype != np.dtype(self.numpy_dtype):
            raise ValueError(f"{self.name}: dtype {array.dtype}, expected {self.datatype}")
        if len(array.shape) != len(self.shape) or any(
            want != -1 and got != want for got, want in zip(array.shape, self.shape, strict=True)
        ):
            raise ValueError(f"{self.name}: shape {array.shape} does not match {self.shape}")


@dataclass
class StageTimes:
    """Wall-clock seconds spent in each phase of one call to :meth:`ZooModel.infer`."""

    preprocess: float = 0.0
    forward: float = 0.0
    postprocess: float = 0.0

    @property
    def total(self) -> float:
        return self.preprocess + self.forward + self.postprocess


class ZooModel(ABC):
    """A servable model: schema, preprocessing, staged forward pass, postprocessing.

    Subclasses set ``name``, ``inputs``, ``outputs`` and implement the abstract methods.
    Construction is cheap; the torch module is built on first use (:meth:`load`).
    """

    name: str = ""
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    size_unit: str = ""
    """What ``input_size`` counts for this model (e.g. 'words', 'lookback steps', 'pixels')."""
    default_size: int = 0
    """The representative ``input_size`` (used by ``make_input(None, ...)`` and ``describe``)."""

    def __init__(self, variant: str = "full", weights: str | Path | None = None, seed: int = 0):
        if variant not in ("full", "tiny"):
            raise ValueError(f"unknown variant {variant!r}; valid: 'full', 'tiny'")
        self.variant = variant
        self.weights = Path(weights) if weights is not None else None
        self.seed = seed
        self._module: Any = None
        self._load_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(variant={self.variant!r}, seed={self.seed})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_load_lock"]  # locks cannot be pickled (process servers send models)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._load_lock = threading.Lock()

    # -- construction -------------------------------------------------------------------------
    @abstractmethod
    def build(self) -> Any:
        """Return a freshly built ``torch.nn.Module`` (seeded weights, eval mode)."""

    def architecture(self) -> Any:
        """The module's structure alone: what :meth:`build` returns before any step that
        computes values (e.g. BatchNorm calibration).  The weight cache builds it on the
        ``meta`` device and assigns stored tensors to it (:mod:`.weight_cache`)."""
        return self.build()

    def load(self) -> Any:
        """Build the module once (seeded, or from ``self.weights``) and return it.

        Thread-safe: concurrent first calls build the module once.  Raises
        ``FileNotFoundError`` when ``weights`` names a missing file.
        """
        if self._module is not None:
            return self._module
        with self._load_lock:
            if self._module is not None:
                return self._module
            import torch

            if self.weights is not None and not self.weights.exists():
                raise FileNotFoundError(f"weights file not found: {self.weights}")

            # Seed a private copy of the RNG: building a model leaves the global state alone.
            from servelab.servers.zoo import weight_cache

            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                module = self.build() if self.weights is not None else weight_cache.build(self)
            if self.weights is not None:
                state = torch.load(self.weights, map_location="cpu", weights_only=True)
                module.load_state_dict(state)
                log.info("%s: loaded weights from %s", self.name, self.weights)
            module.eval()
            for p in module.parameters():
                p.requires_grad_(False)
            self._module = module
            return self._module

    @property
    def module(self) -> Any:
        return self.load()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.load().parameters())

    def param_bytes(self) -> int:
        m = self.load()
        return sum(p.numel() * p.element_size() for p in m.parameters()) + sum(
            b.numel() * b.element_size() for b in m.buffers()
        )

    # -- request path -------------------------------------------------------------------------
    @abstractmethod
    def make_input(self, size: int | None, rng: np.random.Generator) -> Inputs:
        """A synthetic single request (batch dimension 1) of the given ``input_size``."""

    @abstractmethod
    def preprocess(self, inputs: Sequence[Inputs]) -> Any:
        """Turn a list of single-request inputs into one batched model input."""

    @abstractmethod
    def stages(self, batch: Any) -> list[Callable[[Any], Any]]:
        """The forward pass as a list of stage functions: ``state = f(state)`` in order.

        ``state`` starts as ``batch`` and the last stage returns the model output.  Execution can
        pause between any two stages (MLFQ preemption).
        """

    @abstractmethod
    def postprocess(self, output: Any, n: int) -> list[Inputs]:
        """Split the batched output into ``n`` per-request output dicts (OIP output names)."""

    def input_size(self, inputs: Inputs) -> int:
        """The ``input_size`` of a single request (the quantity service time depends on)."""
        raise NotImplementedError

    def forward_unstaged(self, batch: Any) -> Any:
        """The same output as :meth:`forward`, computed by calling the module once (no stages).

        Used to check that the staged forward pass is exact.
        """
        raise NotImplementedError

    def run_stages(self, batch: Any) -> Iterator[Any]:
        """Run the forward pass stage by stage, yielding after each stage; the last value
        yielded is the output.

        Inference mode is entered around each stage rather than across the ``yield``s, so
        several suspended generators interleaved on one thread (MLFQ preemption in an asyncio
        server) cannot leave the thread's grad mode in the wrong state.
        """
        import torch

        with torch.inference_mode():
            stages = self.stages(batch)
        state = batch
        for stage in stages:
            with torch.inference_mode():
                state = stage(state)
            yield state

    def forward(self, batch: Any) -> Any:
        out = None
        for out in self.run_stages(batch):
            pass
        return out

    def infer(self, inputs: Sequence[Inputs], times: StageTimes | None = None) -> list[Inputs]:
        """preprocess -> forward -> postprocess for a batch of requests."""
        t0 = time.perf_counter()
        batch = self.preprocess(inputs)
        t1 = time.perf_counter()
        out = self.forward(batch)
        t2 = time.perf_counter()
        result = self.postprocess(out, len(inputs))
        t3 = time.perf_counter()
        if times is not None:
            times.preprocess, times.forward, times.postprocess = t1 - t0, t2 - t1, t3 - t2
        return result


def stack_requests(inputs: Sequence[Inputs], name: str, dtype: Any = None) -> np.ndarray:
    """Concatenate tensor ``name`` of single requests (batch dimension 1) along the batch axis.

    Raises ``ValueError`` for an empty batch, a missing tensor or a request whose batch dimension
    is not 1 (``postprocess`` returns exactly one row per request).
    """
    if not inputs:
        raise ValueError("empty batch")
    arrays = []
    for i, req in enumerate(inputs):
        if name not in req:
            raise ValueError(f"request {i} has no input tensor {name!r} (has {sorted(req)})")
        a = np.asarray(req[name], dtype=dtype)
        if a.ndim == 0 or a.shape[0] != 1:
            raise ValueError(
                f"request {i}: input {name!r} must have batch dimension 1, got shape {a.shape}"
            )
        arrays.append(a)
    return np.concatenate(arrays, axis=0)


def classifier_outputs(logits: Any, n: int) -> list[Inputs]:
    """Split a classifier's (n, classes) logits into per-request ``probabilities`` (softmax) and
    ``label`` outputs — the postprocess every classification model in the zoo shares."""
    import torch

    probs = torch.softmax(logits.float(), dim=1).numpy().astype(np.float32)
    labels = probs.argmax(axis=1).astype(np.int64)
    if len(probs) != n:
        raise ValueError(f"output has {len(probs)} rows for {n} requests")
    return [{"probabilities": probs[i : i + 1], "label": labels[i : i + 1]} for i in range(n)]
