"""LSTM forecaster for ETTh1-shaped series: a lookback window of 7 channels -> 24 steps ahead.

A sequential recurrence of small matrix products: cost grows linearly with the lookback.
Full: 2-layer ``nn.LSTM`` (input 7, hidden 128, batch first) and a linear head from the last
hidden state to a 24 x 7 forecast (0.2M parameters).  Tiny: hidden 16, also 2 layers.

Each window is standardized per channel (instance normalization as in RevIN) in
:meth:`LstmForecaster.preprocess`; the statistics travel with the batch and the forecast is
de-normalized in :meth:`LstmForecaster.postprocess`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from servelab.servers.zoo.base import Inputs, TensorSpec, ZooModel
from servelab.servers.zoo.series import COLUMNS, etth1_like

log = logging.getLogger(__name__)

CHANNELS = len(COLUMNS)
HORIZON = 24
CHUNK = 96
"""Time steps per forward stage: the LSTM state (h, c) is carried from one chunk to the next."""
EPS = 1e-5
MAX_LOOKBACK = 720


class Forecaster(nn.Module):
    """LSTM over the window, linear head on the last top-layer hidden state."""

    def __init__(self, hidden: int = 128, layers: int = 2) -> None:
        super().__init__()
        self.lstm = nn.LSTM(CHANNELS, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, HORIZON * CHANNELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1]).view(-1, HORIZON, CHANNELS)


@dataclass
class WindowBatch:
    """Normalized windows (N, L, 7) with their per-channel statistics (N, 1, 7)."""

    x: Any
    mean: Any
    std: Any
    lookbacks: list[int]


@dataclass
class Forecast:
    """The model output in normalized units plus the statistics to undo the normalization."""

    normalized: Any
    mean: Any
    std: Any


class LstmForecaster(ZooModel):
    """``window`` FP32 (N, L, 7) -> ``forecast`` FP32 (N, 24, 7).

    Batches may mix lookbacks: shorter windows are left-padded with their first (normalized)
    value up to the longest one.  Padding makes the batch cost the longest lookback, and a padded
    request's forecast is close to, but not bit-identical with, its forecast when served alone
    (the recurrence sees the extra steps).  Stages: one per 96-step chunk of the lookback, then
    the head.
    """

    name = "lstm_forecaster"
    inputs = (TensorSpec("window", "FP32", (-1, -1, CHANNELS)),)
    outputs = (TensorSpec("forecast", "FP32", (-1, HORIZON, CHANNELS)),)
    size_unit = "lookback steps"
    default_size = 96

    @property
    def dims(self) -> tuple[int, int]:
        """(hidden size, layers)."""
        return (128, 2) if self.variant == "full" else (16, 2)

    def build(self) -> Any:
        return Forecaster(*self.dims)

    # -- request path ---------------------------------------------------------------------------
    def make_input(self, size: int | None, rng: np.random.Generator) -> Inputs:
        lookback = self.default_size if size is None else size
        if not 1 <= lookback <= MAX_LOOKBACK:
            raise ValueError(f"lookback must be in 1..{MAX_LOOKBACK}, got {lookback}")
        return {"window": etth1_like(lookback, rng)[None]}

    def input_size(self, inputs: Inputs) -> int:
        return int(np.asarray(inputs["window"]).shape[1])

    def preprocess(self, inputs: Sequence[Inputs]) -> WindowBatch:
        if not inputs:
            raise ValueError("empty batch")
        windows = []
        for i, req in enumerate(inputs):
            if "window" not in req:
                raise ValueError(f"request {i} has no input tensor 'window' (has {sorted(req)})")
            w = np.asarray(req["window"], dtype=np.float32)
            if w.ndim != 3 or w.shape[0] != 1 or w.shape[2] != CHANNELS or w.shape[1] < 1:
                raise ValueError(
                    f"request {i}: window must be (1, lookback, {CHANNELS}), got {w.shape}"
                )
            windows.append(w[0])
        lookbacks = [len(w) for w in windows]
        longest = max(lookbacks)
        x = np.empty((len(windows), longest, CHANNELS), dtype=np.float32)
        mean = np.empty((len(windows), 1, CHANNELS), dtype=np.float32)
        std = np.empty_like(mean)
        for i, w in enumerate(windows):
            mean[i, 0] = w.mean(axis=0)
            std[i, 0] = np.sqrt(w.var(axis=0) + EPS)
            z = (w - mean[i]) / std[i]
            pad = longest - len(w)
            x[i, :pad] = z[0]
            x[i, pad:] = z
        return WindowBatch(
            torch.from_numpy(x), torch.from_numpy(mean), torch.from_numpy(std), lookbacks
        )

    def stages(self, batch: WindowBatch) -> list[Callable[[Any], Any]]:
        net = self.load()

        def chunk_stage(chunk: Any) -> Callable[[Any], Any]:
            def run(state: Any) -> tuple[Any, Any]:
                hc = None if isinstance(state, WindowBatch) else state[0]
                out, hc = net.lstm(chunk, hc)
                return hc, out[:, -1]

            return run

        def head(state: tuple[Any, Any]) -> Forecast:
            y = net.head(state[1]).view(-1, HORIZON, CHANNELS)
            return Forecast(y, batch.mean, batch.std)

        return [chunk_stage(c) for c in batch.x.split(CHUNK, dim=1)] + [head]

    def forward_unstaged(self, batch: WindowBatch) -> Forecast:
        with torch.inference_mode():
            return Forecast(self.load()(batch.x), batch.mean, batch.std)

    def postprocess(self, output: Forecast, n: int) -> list[Inputs]:
        forecast = (output.normalized * output.std + output.mean).numpy().astype(np.float32)
        if len(forecast) != n:
            raise ValueError(f"output has {len(forecast)} rows for {n} requests")
        return [{"forecast": forecast[i : i + 1]} for i in range(n)]
