"""Pure NumPy reference implementations of the C kernels (and the fallback without a compiler).

Same arithmetic, same layouts as ``kernels.c``:

* :func:`preprocess_images`: uint8 (N, H, W, C) -> float32 (N, C, H, W),
  ``(x / 255 - mean) / std`` in float32 (bit-identical with the torch and C versions);
* :func:`lstm_run`: a stacked LSTM (gate order i, f, g, o as ``torch.nn.LSTM``) over a chunk of
  steps with carried state, then optionally the linear head.  The parameters come packed as in
  :class:`servelab.ffi.kernels.LstmWeights`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from servelab.ffi.kernels import LstmWeights


def preprocess_images(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C) -> normalized float32 (N, C, H, W), C-contiguous."""
    x: np.ndarray = images.astype(np.float32) / np.float32(255.0)
    x = (x - mean.astype(np.float32)) / std.astype(np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.float32(1.0) / (np.float32(1.0) + np.exp(-x))


def lstm_run(
    w: LstmWeights, x: np.ndarray, h: np.ndarray, c: np.ndarray, with_head: bool
) -> np.ndarray | None:
    """Advance state ``h``, ``c`` (layers, N, hidden; updated in place) over ``x`` (N, T, I);
    return ``head(h[-1])`` (N, out_features) when ``with_head``, else None."""
    hidden = w.hidden
    layer_in = x
    for layer in range(w.layers):
        w_ih_t, w_hh_t, bias = w.layer(layer)
        steps = layer_in.shape[1]
        # Input projections of all steps at once (they do not depend on the recurrence).
        proj = layer_in @ w_ih_t + bias  # (N, T, 4H)
        hl, cl = h[layer], c[layer]
        outs = np.empty((x.shape[0], steps, hidden), dtype=np.float32) if layer + 1 < w.layers \
            else None
        for t in range(steps):
            g = proj[:, t] + hl @ w_hh_t
            i = _sigmoid(g[:, :hidden])
            f = _sigmoid(g[:, hidden : 2 * hidden])
            gg = np.tanh(g[:, 2 * hidden : 3 * hidden])
            o = _sigmoid(g[:, 3 * hidden :])
            cl[...] = f * cl + i * gg
            hl[...] = o * np.tanh(cl)
            if outs is not None:
                outs[:, t] = hl
        if outs is not None:  # None after the last layer, whose outputs nothing reads
            layer_in = outs
    if not with_head:
        return None
    w_t, b = w.head()
    return (h[-1] @ w_t + b).astype(np.float32, copy=False)
