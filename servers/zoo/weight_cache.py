"""A disk cache of the zoo's seeded weights: build a model's weights once, load them after.

Building a zoo model from its architecture is not free: DistilBERT's random initialization of
66 M parameters and MobileNetV2's BatchNorm calibration passes take 1-3 s on this 2-core
machine, and every server start, process-pool template, calibration point and backend switch
paid it again.  The first build of (model, variant, seed) writes its tensors under the cache
folder; a later one builds the module's skeleton on the ``meta`` device (no memory, no
initialization) and assigns the stored tensors to it -- the same values bit for bit, in a
fraction of the time.

The key covers everything the values depend on: the model's name, variant and seed, the
source of the model's module (its constants and construction code), and the versions of torch,
torchvision and transformers (their initializers).  Any other change a key cannot see is
caught by the load itself: a stored file whose names, shapes or dtypes do not match the
skeleton is rebuilt, never half-used.

Folder: ``$SERVELAB_CACHE/weights`` (default ``~/.cache/servelab/weights``);
``SERVELAB_WEIGHT_CACHE=0`` turns the cache off.  Models loaded from ``--weights`` never use it.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from servelab.servers.zoo.base import ZooModel

log = logging.getLogger(__name__)

LIBRARIES = ("torch", "torchvision", "transformers")
"""Packages whose initializers the seeded values depend on."""


def enabled() -> bool:
    return os.environ.get("SERVELAB_WEIGHT_CACHE", "1").strip().lower() not in ("0", "off", "no",
                                                                                 "false")


def folder() -> Path:
    root = os.environ.get("SERVELAB_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "servelab"
    return base / "weights"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


def key(model: ZooModel) -> str:
    """``<name>-<variant>-seed<seed>-<digest>``: the file stem of this model's weights."""
    h = hashlib.sha256()
    h.update(Path(inspect.getfile(type(model))).read_bytes())
    for package in LIBRARIES:
        h.update(f"{package}={_version(package)};".encode())
    return f"{model.name}-{model.variant}-seed{model.seed}-{h.hexdigest()[:16]}"


def path(model: ZooModel) -> Path:
    return folder() / f"{key(model)}.pt"


def build(model: ZooModel) -> Any:
    """The model's module with its seeded weights: from the cache when it holds them, else
    built (``model.build()``, under the caller's seeded RNG) and stored."""
    if not enabled():
        return model.build()
    file = path(model)
    if file.is_file():
        try:
            return _load(model, file)
        except Exception as exc:  # a stale or damaged file: rebuild it
            log.warning("%s: cached weights %s unusable (%s); rebuilding", model.name, file, exc)
    module = model.build()
    try:
        _store(module, file)
    except OSError as exc:  # a read-only home: serve anyway, slower next time
        log.warning("%s: cannot cache weights at %s: %s", model.name, file, exc)
    return module


def tensors(module: Any) -> dict[str, Any]:
    """Every parameter and buffer by its full name, the non-persistent buffers included
    (``state_dict`` leaves those out, and a meta skeleton would keep them empty)."""
    out = dict(module.named_parameters())
    out.update(module.named_buffers())
    return out


def _store(module: Any, file: Path) -> None:
    import torch

    from servelab.results import atomic_write

    values = {k: v.detach() for k, v in tensors(module).items()}
    atomic_write(file, lambda tmp: torch.save(values, tmp))  # never half a file to a reader
    log.info("%s: cached seeded weights at %s", type(module).__name__, file)


_INITIALIZERS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_",
                 "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
                 "kaiming_normal_", "orthogonal_", "sparse_")
"""``torch.nn.init`` functions a skeleton skips."""
_FILLS = ("normal_", "uniform_", "zero_", "fill_", "bernoulli_", "exponential_", "geometric_",
          "log_normal_", "cauchy_", "random_")
"""In-place ``Tensor`` methods that only set values (never shape, dtype or device)."""


def meta_skeleton(model: ZooModel) -> Any:
    """``model.architecture()`` on the ``meta`` device, its value initialisers skipped.

    A meta tensor has no values to initialise, but torch still runs its random initialisers
    on it through their Python reference implementations, and the first of those imports
    ``torch._dynamo`` -- 2-5 s on a 2-core machine, more than the rest of a server's start
    for models that need nothing else of it.  A torch-function mode (per thread, so a real
    build on another thread is untouched) answers those calls on meta tensors with the tensor
    itself."""
    import torch
    from torch.overrides import TorchFunctionMode

    skip = {getattr(torch.nn.init, n) for n in _INITIALIZERS if hasattr(torch.nn.init, n)}
    skip |= {getattr(torch.Tensor, n) for n in _FILLS if hasattr(torch.Tensor, n)}

    class SkipValues(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: Any = (),
                               kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            if func in skip:
                tensor = args[0] if args else kwargs.get("tensor")
                if isinstance(tensor, torch.Tensor) and tensor.is_meta:
                    return tensor
            return func(*args, **kwargs)

    with torch.device("meta"), SkipValues():
        return model.architecture()


def _load(model: ZooModel, file: Path) -> Any:
    import torch

    module = meta_skeleton(model)
    stored = torch.load(file, map_location="cpu", weights_only=True)
    want = tensors(module)
    if set(stored) != set(want):
        missing, extra = sorted(set(want) - set(stored)), sorted(set(stored) - set(want))
        raise ValueError(f"tensor names differ (missing {missing[:3]}, unexpected {extra[:3]})")
    for name, skeleton in want.items():
        value = stored[name]
        if value.shape != skeleton.shape or value.dtype != skeleton.dtype:
            raise ValueError(f"{name}: stored {tuple(value.shape)} {value.dtype}, "
                             f"model {tuple(skeleton.shape)} {skeleton.dtype}")
    for name in want:
        owner_name, _, leaf = name.rpartition(".")
        owner = module.get_submodule(owner_name)
        if leaf in owner._parameters:
            owner._parameters[leaf] = torch.nn.Parameter(stored[name],
                                                         requires_grad=False)
        else:
            owner._buffers[leaf] = stored[name]
    left = [n for n, t in [*module.named_parameters(remove_duplicate=False),
                           *module.named_buffers(remove_duplicate=False)] if t.is_meta]
    if left:  # e.g. a tied weight under a second name
        raise ValueError(f"tensors left unassigned: {left[:3]}")
    return module
