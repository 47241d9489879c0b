"""MobileNetV2 image classifier on CIFAR-10-shaped images (32x32 RGB, 10 classes).

Many small convolutions, each a separate Python-dispatched op: the model whose thread scaling is
GIL-bound.  Full: ``torchvision.models.mobilenet_v2(weights=None, num_classes=10)`` (width 1.0,
17 inverted-residual blocks, 2.2M parameters), unmodified, so a 32x32 input is down-sampled to
1x1 by the last stage.  Tiny: width 0.25 and one block per stage (same code path, same stages).
Seeded weights get BatchNorm statistics from random batches (:func:`calibrate_batchnorm`).

The architecture is torchvision's, built here (:func:`mobilenet_v2`: the same modules in the same
order, the same initialisation, so the same state dict and, under one seed, the same values; a
test compares it with torchvision's).  Importing torchvision costs 2-4 s on a 2-core machine
(``torchvision.ops`` imports ``torch._dynamo``) -- more than torch itself -- and every server
start, process-pool template and calibration worker paid it for this one model.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from servelab.servers.zoo.base import (
    Inputs,
    TensorSpec,
    ZooModel,
    classifier_outputs,
    stack_requests,
)

log = logging.getLogger(__name__)

IMAGE_SIDE = 32
NUM_CLASSES = 10
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

# torchvision's inverted-residual setting: (expansion t, channels c, repeats n, stride s).
FULL_SETTING = [
    [1, 16, 1, 1],
    [6, 24, 2, 2],
    [6, 32, 3, 2],
    [6, 64, 4, 2],
    [6, 96, 3, 1],
    [6, 160, 3, 2],
    [6, 320, 1, 1],
]
TINY_SETTING = [[t, c, 1, s] for t, c, _, s in FULL_SETTING]
TINY_WIDTH = 0.25


# -- the architecture: torchvision's MobileNetV2, without importing torchvision ----------------
# Ported from torchvision 0.2x (``torchvision/models/mobilenetv2.py`` and ``ops/misc.py``,
# BSD-3-Clause, Copyright (c) Soumith Chintala 2016): module names, order and initialisation are
# kept exactly, so state dicts are interchangeable and a seeded build gives the same values.


def make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """torchvision's ``_make_divisible``: ``v`` rounded to a multiple of ``divisor``, never down
    by more than 10%."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _conv_bn_relu6(inp: int, oup: int, kernel_size: int = 3, stride: int = 1,
                   groups: int = 1) -> Any:
    """torchvision's ``Conv2dNormActivation`` with BatchNorm and ReLU6: a Sequential of conv
    (no bias), BatchNorm2d and an in-place ReLU6."""
    from torch import nn

    block = nn.Sequential(
        nn.Conv2d(inp, oup, kernel_size, stride, (kernel_size - 1) // 2, dilation=1,
                  groups=groups, bias=False),
        nn.BatchNorm2d(oup),
        nn.ReLU6(inplace=True),
    )
    block.out_channels = oup  # type: ignore[assignment]  # as torchvision sets it
    return block


@functools.lru_cache(maxsize=1)
def _classes() -> tuple[Any, Any]:
    """torchvision's ``InvertedResidual`` and ``MobileNetV2`` module classes, defined on first
    use (torch is imported only when a model is built)."""
    import torch
    from torch import nn

    class InvertedResidual(nn.Module):
        """Pointwise expansion, depthwise, linear pointwise; a residual connection when the
        shape is kept."""

        def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
            super().__init__()
            if stride not in (1, 2):
                raise ValueError(f"stride should be 1 or 2 instead of {stride}")
            self.stride = stride
            hidden_dim = int(round(inp * expand_ratio))
            self.use_res_connect = stride == 1 and inp == oup
            layers: list[nn.Module] = []
            if expand_ratio != 1:
                layers.append(_conv_bn_relu6(inp, hidden_dim, kernel_size=1))
            layers.extend([
                _conv_bn_relu6(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim),
                nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
                nn.BatchNorm2d(oup),
            ])
            self.conv = nn.Sequential(*layers)
            self.out_channels = oup
            self._is_cn = stride > 1

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.use_res_connect:
                return x + self.conv(x)
            return self.conv(x)

    class MobileNetV2(nn.Module):
        def __init__(self, num_classes: int, width_mult: float,
                     inverted_residual_setting: Sequence[Sequence[int]], round_nearest: int = 8,
                     dropout: float = 0.2) -> None:
            super().__init__()
            if len(inverted_residual_setting) == 0 or len(inverted_residual_setting[0]) != 4:
                raise ValueError("inverted_residual_setting should be non-empty or a 4-element "
                                 f"list, got {inverted_residual_setting}")
            input_channel = make_divisible(32 * width_mult, round_nearest)
            self.last_channel = make_divisible(1280 * max(1.0, width_mult), round_nearest)
            features: list[nn.Module] = [_conv_bn_relu6(3, input_channel, stride=2)]
            for t, c, n, s in inverted_residual_setting:
                output_channel = make_divisible(c * width_mult, round_nearest)
                for i in range(n):
                    features.append(InvertedResidual(input_channel, output_channel,
                                                     s if i == 0 else 1, expand_ratio=t))
                    input_channel = output_channel
            features.append(_conv_bn_relu6(input_channel, self.last_channel, kernel_size=1))
            self.features = nn.Sequential(*features)
            self.classifier = nn.Sequential(
                nn.Dropout(p=dropout),
                nn.Linear(self.last_channel, num_classes),
            )
            for m in self.modules():  # torchvision's initialisation, in the same module order
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out")
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
                elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
                elif isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0, 0.01)
                    nn.init.zeros_(m.bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.features(x)
            x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
            x = torch.flatten(x, 1)
            return self.classifier(x)

    for cls in (InvertedResidual, MobileNetV2):  # pickled by name (the module's __getattr__)
        cls.__qualname__ = cls.__name__
    return InvertedResidual, MobileNetV2


def __getattr__(name: str) -> Any:
    """``InvertedResidual`` and ``MobileNetV2`` as module attributes, defined on first access
    (so a pickled model -- process servers send them -- finds its classes by name)."""
    if name in ("InvertedResidual", "MobileNetV2"):
        return dict(zip(("InvertedResidual", "MobileNetV2"), _classes(), strict=True))[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def mobilenet_v2(num_classes: int, width_mult: float,
                 inverted_residual_setting: Sequence[Sequence[int]]) -> Any:
    """``torchvision.models.mobilenet_v2(weights=None, ...)`` with these arguments: the same
    modules (``features``, ``classifier``), parameters, buffers and initialisation."""
    return _classes()[1](num_classes, width_mult, inverted_residual_setting)


def calibrate_batchnorm(module: Any, batches: int = 4, batch_size: int = 16) -> None:
    """Set BatchNorm running statistics from a few random batches (seeded by the caller's RNG).

    Freshly initialized BatchNorm layers have running mean 0 and variance 1, which in eval mode
    lets the activations of a randomly initialized MobileNetV2 shrink by ~1e-9 through the 17
    blocks: every input then gets the same uniform output.  Recording the statistics the way
    training would makes eval-mode activations unit-scale and the outputs input-dependent.
    """
    import torch
    from torch import nn

    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    module.train()
    with torch.no_grad():
        for _ in range(batches):
            module(torch.randn(batch_size, 3, IMAGE_SIDE, IMAGE_SIDE))
    for m in norms:
        m.momentum = 0.1
    module.eval()


class MobileNetV2Model(ZooModel):
    """MobileNetV2, CIFAR-10 shaped: ``image`` uint8 (N, 32, 32, 3) HWC -> class probabilities.

    Stages: one per row of the inverted-residual setting (the stem conv is in the first, the
    final 1x1 conv in the last), then the pooling + classifier head: 8 stages in both variants.
    """

    name = "mobilenet_v2"
    inputs = (TensorSpec("image", "UINT8", (-1, IMAGE_SIDE, IMAGE_SIDE, 3)),)
    outputs = (
        TensorSpec("probabilities", "FP32", (-1, NUM_CLASSES)),
        TensorSpec("label", "INT64", (-1,)),
    )
    size_unit = "pixels"
    default_size = IMAGE_SIDE

    @property
    def setting(self) -> list[list[int]]:
        return FULL_SETTING if self.variant == "full" else TINY_SETTING

    def architecture(self) -> Any:
        width = 1.0 if self.variant == "full" else TINY_WIDTH
        return mobilenet_v2(
            num_classes=NUM_CLASSES,
            width_mult=width,
            inverted_residual_setting=[list(row) for row in self.setting],
        )

    def build(self) -> Any:
        module = self.architecture()
        calibrate_batchnorm(module)
        return module

    # -- request path ---------------------------------------------------------------------------
    def make_input(self, size: int | None, rng: np.random.Generator) -> Inputs:
        side = self.default_size if size is None else size
        if side != IMAGE_SIDE:
            raise ValueError(f"{self.name} takes {IMAGE_SIDE}x{IMAGE_SIDE} images, not size {side}")
        image = rng.integers(0, 256, size=(1, IMAGE_SIDE, IMAGE_SIDE, 3), dtype=np.uint8)
        return {"image": image}

    def input_size(self, inputs: Inputs) -> int:
        return int(np.asarray(inputs["image"]).shape[1])

    def preprocess(self, inputs: Sequence[Inputs]) -> Any:
        """uint8 HWC images -> float32 (N, 3, 32, 32) normalized with CIFAR-10 mean/std."""
        import torch

        images = stack_requests(inputs, "image", dtype=np.uint8)
        if images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE, 3):
            raise ValueError(
                f"image must be (N, {IMAGE_SIDE}, {IMAGE_SIDE}, 3) uint8, got {images.shape}"
            )
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
        mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
        return ((x - mean) / std).contiguous()

    def stage_groups(self) -> list[list[int]]:
        """Indices into ``module.features`` run by each feature stage."""
        rows = [n for _, _, n, _ in self.setting]
        groups, start = [], 1  # features[0] is the stem conv
        for n in rows:
            groups.append(list(range(start, start + n)))
            start += n
        groups[0].insert(0, 0)
        groups[-1].append(start)  # the final 1x1 conv (features[-1])
        return groups

    def stages(self, batch: Any) -> list[Callable[[Any], Any]]:
        import torch
        from torch import nn

        module = self.load()
        features = module.features
        seqs = [nn.Sequential(*(features[i] for i in group)) for group in self.stage_groups()]

        def head(x: torch.Tensor) -> torch.Tensor:
            x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
            return module.classifier(torch.flatten(x, 1))

        return [*seqs, head]

    def forward_unstaged(self, batch: Any) -> Any:
        import torch

        with torch.inference_mode():
            return self.load()(batch)

    def postprocess(self, output: Any, n: int) -> list[Inputs]:
        return classifier_outputs(output, n)
