"""Compute kernels on the request path, one interface, four implementations.

``get_kernels(name)`` with ``name`` in :data:`KERNELS`:

* ``torch``     -- the zoo models' own torch code (the baseline);
* ``c-release`` -- the C kernels, GIL released for the whole call (other threads run);
* ``c-hold``    -- the same C source, GIL held for the whole call (other threads stall);
* ``python``    -- the NumPy reference (also the fallback when no compiled build is available).

Every implementation provides

* ``preprocess_images(images, mean=None, std=None)``: uint8 (N, H, W, C) -> normalized float32
  (N, C, H, W); mean/std default to :data:`CIFAR10_MEAN` / :data:`CIFAR10_STD` (``mobilenet_v2``'s);
* ``lstm_forward(weights, windows)``: the ``lstm_forecaster`` network (stacked LSTM + linear head)
  on normalized windows (N, L, channels) -> (N, horizon, channels);
* ``lstm_state`` / ``lstm_steps`` / ``lstm_head``: the same computation chunk by chunk, carrying
  the (h, c) state, for the staged forward pass.

Weights come from the torch model, packed once: ``LstmWeights.from_module(model.load())``.
To make a zoo model use a kernel, see :func:`servelab.servers.kernel_models.apply_kernel`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from servelab.ffi import _loader, reference

log = logging.getLogger(__name__)

KERNELS = ("torch", "c-release", "c-hold", "python")
"""Valid kernel names (the same as ``servelab.core.config.KERNELS``)."""


# -- weights ----------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class LstmWeights:
    """The forecaster's parameters packed into one float32 buffer (the C layout).

    Per layer: ``W_ih^T`` (in, 4H), ``W_hh^T`` (H, 4H), ``b_ih + b_hh`` (4H); then the head's
    ``W^T`` (H, horizon * channels) and bias.  ``module`` keeps the torch network for the torch
    kernel (None after :meth:`without_module`, e.g. to send the weights to a process cheaply).
    """

    input_size: int
    hidden: int
    layers: int
    horizon: int
    channels: int
    packed: np.ndarray
    module: Any = None

    @property
    def out_features(self) -> int:
        return self.horizon * self.channels

    def _offsets(self) -> list[int]:
        g, offs, pos = 4 * self.hidden, [], 0
        for layer in range(self.layers):
            inp = self.input_size if layer == 0 else self.hidden
            offs.append(pos)
            pos += inp * g + self.hidden * g + g
        offs.append(pos)
        return offs

    def layer(self, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Views ``(W_ih^T, W_hh^T, bias)`` of one layer."""
        g = 4 * self.hidden
        inp = self.input_size if layer == 0 else self.hidden
        p = self._offsets()[layer]
        w_ih_t = self.packed[p : p + inp * g].reshape(inp, g)
        p += inp * g
        w_hh_t = self.packed[p : p + self.hidden * g].reshape(self.hidden, g)
        p += self.hidden * g
        return w_ih_t, w_hh_t, self.packed[p : p + g]

    def head(self) -> tuple[np.ndarray, np.ndarray]:
        """Views ``(W^T, bias)`` of the linear head."""
        p = self._offsets()[-1]
        n = self.hidden * self.out_features
        w_t = self.packed[p : p + n].reshape(self.hidden, self.out_features)
        return w_t, self.packed[p + n : p + n + self.out_features]

    def without_module(self) -> LstmWeights:
        return replace(self, module=None)

    @classmethod
    def from_module(cls, net: Any) -> LstmWeights:
        """Pack a network with ``.lstm`` (``nn.LSTM``, batch first) and ``.head``
        (``nn.Linear`` from the hidden state to ``horizon * channels``), as the zoo's
        ``lstm_forecaster`` builds it.  Raises ``ValueError`` for an LSTM the kernels do not
        implement (bidirectional, projections, no bias, not batch first)."""
        lstm, head = net.lstm, net.head
        if lstm.bidirectional or getattr(lstm, "proj_size", 0) or not lstm.bias:
            raise ValueError("kernels implement unidirectional LSTMs with bias, no projection")
        if not lstm.batch_first:
            raise ValueError("kernels implement batch_first LSTMs")
        hidden, layers, channels = lstm.hidden_size, lstm.num_layers, lstm.input_size
        if head.in_features != hidden or head.out_features % channels:
            raise ValueError(
                f"head {head.in_features}->{head.out_features} does not fit hidden {hidden} "
                f"and {channels} channels"
            )

        def arr(t: Any) -> np.ndarray:
            return t.detach().to("cpu").float().numpy()

        parts = []
        for layer in range(layers):
            parts.append(arr(getattr(lstm, f"weight_ih_l{layer}")).T.ravel())
            parts.append(arr(getattr(lstm, f"weight_hh_l{layer}")).T.ravel())
            parts.append(
                arr(getattr(lstm, f"bias_ih_l{layer}")) + arr(getattr(lstm, f"bias_hh_l{layer}"))
            )
        parts.append(arr(head.weight).T.ravel())
        parts.append(arr(head.bias))
        packed = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
        packed.setflags(write=False)
        return cls(channels, hidden, layers, head.out_features // channels, channels, packed, net)


CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
"""The default image normalisation: ``mobilenet_v2``'s (servers/zoo/mobilenet.py; a test checks
they agree — ffi lies below the servers, so it cannot import the zoo)."""


def _image_stats(mean: Any, std: Any, channels: int) -> tuple[np.ndarray, np.ndarray]:
    if mean is None or std is None:
        mean = CIFAR10_MEAN if mean is None else mean
        std = CIFAR10_STD if std is None else std
    m = np.ascontiguousarray(mean, dtype=np.float32).reshape(-1)
    s = np.ascontiguousarray(std, dtype=np.float32).reshape(-1)
    if m.shape != (channels,) or s.shape != (channels,):
        raise ValueError(f"mean/std must have {channels} values, got {m.shape} and {s.shape}")
    return m, s


def _check_images(images: Any) -> np.ndarray:
    x = np.ascontiguousarray(images)
    if x.dtype != np.uint8 or x.ndim != 4:
        raise ValueError(f"images must be uint8 (N, H, W, C), got {x.dtype} {x.shape}")
    return x


def _check_windows(w: LstmWeights, windows: Any) -> np.ndarray:
    x = np.ascontiguousarray(windows, dtype=np.float32)
    if x.ndim != 3 or x.shape[2] != w.input_size:
        raise ValueError(f"windows must be (N, L, {w.input_size}), got {x.shape}")
    return x


# -- implementations --------------------------------------------------------------------------
class Kernels:
    """The interface (and the chunked-LSTM plumbing shared by the NumPy and C kernels)."""

    name: str = ""
    releases_gil: bool | None = None
    """True: the whole call runs without the GIL; False: with it; None: mixed (torch, NumPy)."""
    requested: str = ""
    """The name asked for (differs from ``name`` after a fallback)."""

    def __repr__(self) -> str:
        extra = f", requested={self.requested!r}" if self.requested != self.name else ""
        return f"{type(self).__name__}(name={self.name!r}{extra})"

    def preprocess_images(self, images: Any, mean: Any = None, std: Any = None) -> np.ndarray:
        raise NotImplementedError

    def _lstm_run(self, w: LstmWeights, x: np.ndarray, h: np.ndarray, c: np.ndarray,
                  with_head: bool) -> np.ndarray | None:
        raise NotImplementedError

    def lstm_state(self, w: LstmWeights, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """A fresh (h, c) state: zeros (layers, batch, hidden)."""
        shape = (w.layers, batch, w.hidden)
        return np.zeros(shape, np.float32), np.zeros(shape, np.float32)

    def lstm_steps(self, w: LstmWeights, chunk: Any, state: tuple[np.ndarray, np.ndarray]
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Run the LSTM over ``chunk`` (N, T, I) from ``state``; returns the new state (the
        given arrays are not modified)."""
        x = _check_windows(w, chunk)
        h, c = (np.array(a, dtype=np.float32, order="C", copy=True) for a in state)
        self._lstm_run(w, x, h, c, False)
        return h, c

    def lstm_head(self, w: LstmWeights, state: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """The head on the top layer's hidden state -> (N, horizon, channels)."""
        h, c = (np.ascontiguousarray(a, dtype=np.float32) for a in state)
        x = np.empty((h.shape[1], 0, w.input_size), np.float32)
        out = self._lstm_run(w, x, h.copy(), c.copy(), True)
        assert out is not None
        return out.reshape(-1, w.horizon, w.channels)

    def lstm_forward(self, w: LstmWeights, windows: Any) -> np.ndarray:
        """The whole network on normalized windows (N, L, I) -> (N, horizon, channels)."""
        x = _check_windows(w, windows)
        h, c = self.lstm_state(w, x.shape[0])
        out = self._lstm_run(w, x, h, c, True)
        assert out is not None
        return out.reshape(-1, w.horizon, w.channels)


class PythonKernels(Kernels):
    name = "python"
    releases_gil = None

    def __init__(self, requested: str = "python"):
        self.requested = requested

    def preprocess_images(self, images: Any, mean: Any = None, std: Any = None) -> np.ndarray:
        x = _check_images(images)
        m, s = _image_stats(mean, std, x.shape[3])
        return reference.preprocess_images(x, m, s)

    def _lstm_run(self, w, x, h, c, with_head):  # type: ignore[no-untyped-def]
        return reference.lstm_run(w, x, h, c, with_head)


class CKernels(Kernels):
    """The compiled kernels of ``kernels.c``, ``build`` = ``release`` or ``hold``."""

    def __init__(self, build: str):
        clib = _loader.load(build)  # raises KernelUnavailable
        self.clib = clib
        self._ffi, self._lib = clib.ffi, clib.lib
        self.name = self.requested = f"c-{build}"
        self.releases_gil = not bool(self._lib.sl_holds_gil())

    def _f32(self, a: np.ndarray) -> Any:
        return self._ffi.from_buffer("float[]", a)

    def preprocess_images(self, images: Any, mean: Any = None, std: Any = None) -> np.ndarray:
        x = _check_images(images)
        n, hh, ww, ch = x.shape
        m, s = _image_stats(mean, std, ch)
        out = np.empty((n, ch, hh, ww), np.float32)
        rc = self._lib.sl_preprocess_images(
            self._ffi.from_buffer("uint8_t[]", x), self._f32(out), n, hh, ww, ch,
            self._f32(m), self._f32(s),
        )
        if rc != 0:
            raise ValueError(f"sl_preprocess_images failed ({rc}) for shape {x.shape}")
        return out

    def _lstm_run(self, w, x, h, c, with_head):  # type: ignore[no-untyped-def]
        n, steps, _ = x.shape
        if h.shape != (w.layers, n, w.hidden) or c.shape != h.shape:
            raise ValueError(f"state must be {(w.layers, n, w.hidden)}, got {h.shape}, {c.shape}")
        out = np.empty((n, w.out_features), np.float32) if with_head else None
        rc = self._lib.sl_lstm_run(
            self._f32(w.packed), w.input_size, w.hidden, w.layers, w.out_features,
            self._f32(x), n, steps, self._f32(h), self._f32(c), int(with_head),
            self._f32(out) if out is not None else self._ffi.NULL,
        )
        if rc == -2:
            raise MemoryError("sl_lstm_run: out of memory")
        if rc != 0:
            raise ValueError(f"sl_lstm_run failed ({rc})")
        return out


class TorchKernels(Kernels):
    """The torch code of the zoo models (what the servers run with ``--kernel torch``)."""

    name = requested = "torch"
    releases_gil = None

    def preprocess_images(self, images: Any, mean: Any = None, std: Any = None) -> np.ndarray:
        import torch

        x = _check_images(images)
        m, s = _image_stats(mean, std, x.shape[3])
        t = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0
        t = (t - torch.from_numpy(m).view(1, -1, 1, 1)) / torch.from_numpy(s).view(1, -1, 1, 1)
        return t.contiguous().numpy()

    @staticmethod
    def _module(w: LstmWeights) -> Any:
        if w.module is None:
            raise ValueError("the torch kernel needs LstmWeights with their module")
        return w.module

    def lstm_steps(self, w, chunk, state):  # type: ignore[no-untyped-def]
        import torch

        x = _check_windows(w, chunk)
        hc = tuple(torch.from_numpy(np.ascontiguousarray(a, np.float32)) for a in state)
        with torch.inference_mode():
            _, (h, c) = self._module(w).lstm(torch.from_numpy(x), hc)
        return h.numpy(), c.numpy()

    def lstm_head(self, w, state):  # type: ignore[no-untyped-def]
        import torch

        with torch.inference_mode():
            top = torch.from_numpy(np.ascontiguousarray(state[0][-1], np.float32))
            y = self._module(w).head(top)
        return y.numpy().reshape(-1, w.horizon, w.channels)

    def lstm_forward(self, w: LstmWeights, windows: Any) -> np.ndarray:
        import torch

        x = _check_windows(w, windows)
        net = self._module(w)
        with torch.inference_mode():
            out, _ = net.lstm(torch.from_numpy(x))
            y = net.head(out[:, -1])
        return y.numpy().reshape(-1, w.horizon, w.channels)


_instances: dict[str, Kernels] = {}
_instances_lock = threading.Lock()
_warned: set[str] = set()


def get_kernels(name: str, strict: bool = False) -> Kernels:
    """The kernels called ``name`` (one of :data:`KERNELS`); instances are shared.

    When a C build is asked for but no compiled build is available, returns the NumPy kernels
    (``.name == "python"``, ``.requested == name``) and logs a warning once, or raises
    :class:`~servelab.ffi._loader.KernelUnavailable` when ``strict``.  Raises ``ValueError`` for
    an unknown name.
    """
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}; valid: {', '.join(KERNELS)}")
    with _instances_lock:
        if name in _instances:
            return _instances[name]
        kernels: Kernels
        if name == "torch":
            kernels = TorchKernels()
        elif name == "python":
            kernels = PythonKernels()
        else:
            try:
                kernels = CKernels(name.removeprefix("c-"))
            except _loader.KernelUnavailable as exc:
                if strict:
                    raise
                if name not in _warned:
                    _warned.add(name)
                    log.warning(
                        "kernel %s unavailable, falling back to the NumPy kernels: %s", name, exc
                    )
                return PythonKernels(requested=name)  # not cached: strict callers may retry
        _instances[name] = kernels
        return kernels


def compiled_available() -> dict[str, str]:
    """For each C build: where it loads from, or why it does not (diagnostics)."""
    status = {}
    for build in _loader.BUILDS:
        try:
            status[f"c-{build}"] = f"{_loader.load(build).origin}: {_loader.load(build).path}"
        except _loader.KernelUnavailable as exc:
            status[f"c-{build}"] = f"unavailable: {exc}"
    return status


def reset() -> None:
    """Forget kernel instances, loaded builds and warnings (tests)."""
    with _instances_lock:
        _instances.clear()
        _warned.clear()
    _loader.reset()
