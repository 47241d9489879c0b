"""MobileNetV2 image classifier on CIFAR-10-shaped images (32x32 RGB, 10 classes).

Many small convolutions, each a separate Python-dispatched op: the model whose thread scaling is
GIL-bound.  Full: ``torchvision.models.mobilenet_v2(weights=None, num_classes=10)`` (width 1.0,
17 inverted-residual blocks, 2.2M parameters), unmodified, so a 32x32 input is down-sampled to
1x1 by the last stage.  Tiny: width 0.25 and one block per stage (same code path, same stages).
Seeded weights get BatchNorm statistics from random batches (:func:`calibrate_batchnorm`).
"""

from __future__ import annotations

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
        from torchvision.models import mobilenet_v2

        width = 1.0 if self.variant == "full" else TINY_WIDTH
        return mobilenet_v2(
            weights=None,
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
