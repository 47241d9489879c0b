"""Server configurations, and command-line flags derived from config dataclasses.

A config dataclass is the single source of truth for its options: each field's metadata holds
its help text (and choices), and :func:`add_dataclass_args` / :func:`from_args` turn the fields
into ``argparse`` flags and back — no option is spelled out twice.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any, TypeVar

CONCURRENCY = ("threads", "processes", "async")
SCHEDULERS = ("fifo", "priority", "sjf", "mlfq")
MODEL_LOCKS = ("global", "per-model", "none")
OFFLOADS = ("inline", "thread", "process")
KERNELS = ("torch", "c-release", "c-hold", "python")
KERNEL_MODELS = ("mobilenet_v2", "lstm_forecaster")
"""The models whose request path ``kernel`` replaces (MobileNetV2's preprocessing, the LSTM's
forward pass: servelab.servers.kernel_models); the others run the same whatever the kernel."""


def kernel_kind(model: str, kernel: str) -> str:
    """The profile's name for ``model`` served on ``kernel`` (``model`` itself for torch or a
    model no kernel changes): ``lstm_forecaster+c-hold``."""
    return model if kernel == "torch" or model not in KERNEL_MODELS else f"{model}+{kernel}"


def opt(default: Any, help: str, choices: tuple[str, ...] | None = None, **kw: Any) -> Any:
    """A dataclass field with CLI metadata (help, choices)."""
    meta = {"help": help, "choices": choices}
    if isinstance(default, list | dict | tuple) and not isinstance(default, str):
        return field(default_factory=lambda: type(default)(default), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


@dataclass(frozen=True)
class ServerConfig:
    """One configuration of an inference server: the unit the study compares."""

    concurrency: str = opt("threads", "concurrency model", CONCURRENCY)
    workers: int = opt(2, "inference workers (threads or processes)")
    scheduler: str = opt("fifo", "queue policy", SCHEDULERS)
    max_batch: int = opt(1, "largest dynamic batch (1 = no batching)")
    batch_timeout_ms: float = opt(0.0, "how long a worker waits to fill a batch")
    intra_op_threads: int = opt(1, "torch intra-op threads per worker")
    queue_capacity: int = opt(256, "bounded queue length; beyond it requests get 503")
    max_queue_wait_ms: float = opt(
        0.0, "time-bounded queueing: a request not started this long after it reached the "
        "server is answered 503, and one that would wait longer is refused at the front door "
        "(0 = no bound but queue_capacity)"
    )
    model_lock: str = opt(
        "none", "threads and async thread offload: how model access is guarded (the lock-"
        "contention experiment; torch models are thread-safe)", MODEL_LOCKS
    )
    offload: str = opt("thread", "async: where inference runs", OFFLOADS)
    kernel: str = opt("torch", "compute kernels for preprocessing / LSTM", KERNELS)
    models: tuple[str, ...] = opt(
        ("mobilenet_v2", "distilbert", "lstm_forecaster"), "models to serve"
    )

    def __post_init__(self) -> None:
        for name, valid in (
            ("concurrency", CONCURRENCY), ("scheduler", SCHEDULERS),
            ("model_lock", MODEL_LOCKS), ("offload", OFFLOADS), ("kernel", KERNELS),
        ):
            if getattr(self, name) not in valid:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; valid: {', '.join(valid)}")
        for name in ("workers", "max_batch", "intra_op_threads", "queue_capacity"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("batch_timeout_ms", "max_queue_wait_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def config_id(self) -> str:
        """A short human-readable id, unique per configuration.

        Its digest hashes only the fields that differ from their defaults, so a field added
        later (with a default that keeps the old behaviour) leaves every earlier configuration's
        id unchanged: cached sweeps, validate stores and policy files keep matching."""
        digest = hashlib.sha1(
            json.dumps(self.non_default(), sort_keys=True).encode()
        ).hexdigest()[:6]
        return f"{self.concurrency}-{self.scheduler}-w{self.workers}-b{self.max_batch}-{digest}"

    def non_default(self) -> dict[str, Any]:
        """The fields that differ from a default ``ServerConfig()`` (JSON-able values)."""
        base = _defaults(type(self))
        return {k: v for k, v in self.to_dict().items() if base[k] != v}

    def in_place_fields(self) -> tuple[str, ...]:
        """What a running server of this configuration can change without a restart
        (``POST /servelab/config``): the queue policy always, the pool size for a thread pool
        (inference threads start and retire live; a process pool or an event loop's executor
        keeps its size)."""
        return ("scheduler", "workers") if self.concurrency == "threads" else ("scheduler",)

    @property
    def process_key(self) -> str:
        """The server *process* this configuration needs: its config_id with every field that
        changes in place set to a fixed value.  Two configurations with one key run in one
        process (the gateway's in-place moves, the meta-scheduler's zero-cost switches)."""
        fixed: dict[str, Any] = {"scheduler": "fifo", "workers": 1}
        return replace(self, **{k: fixed[k] for k in self.in_place_fields()}).config_id

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["models"] = list(self.models)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServerConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"server config: unknown field(s) {unknown}; valid: {sorted(names)}")
        d = dict(data)
        if "models" in d:
            d["models"] = tuple(d["models"])
        return cls(**d)


_DEFAULTS: dict[type, dict[str, Any]] = {}


def _defaults(cls: type[ServerConfig]) -> dict[str, Any]:
    """``cls()``'s fields as a dict, computed once per class."""
    d = _DEFAULTS.get(cls)
    if d is None:
        d = _DEFAULTS[cls] = cls().to_dict()
    return d


T = TypeVar("T")


def _base_type(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base_type(args[0])
    return tp


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    """Add one ``--flag`` per field of dataclass ``cls`` (help and choices from its metadata)."""
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        flag = "--" + prefix + f.name.replace("_", "-")
        tp = _base_type(hints[f.name])
        default: Any = f.default if f.default_factory is MISSING else f.default_factory()
        kw: dict[str, Any] = {"dest": prefix.replace("-", "_") + f.name, "default": default}
        helptext = f.metadata.get("help", "")
        if typing.get_origin(tp) in (tuple, list):
            kw["nargs"] = "+"
            kw["type"] = typing.get_args(tp)[0]
            helptext += f" (default: {' '.join(map(str, default))})"
        elif tp is bool:
            kw["action"] = argparse.BooleanOptionalAction
            helptext += f" (default: {default})"
        else:
            kw["type"] = tp
            helptext += " (default: %(default)s)"
        if f.metadata.get("choices"):
            kw["choices"] = f.metadata["choices"]
        parser.add_argument(flag, help=helptext, **kw)


def to_flags(obj: Any, prefix: str = "", skip_defaults: bool = True) -> list[str]:
    """The command-line flags that :func:`add_dataclass_args` would parse back into ``obj``."""
    out: list[str] = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        default: Any = f.default if f.default_factory is MISSING else f.default_factory()
        if skip_defaults and value == default:
            continue
        flag = "--" + prefix + f.name.replace("_", "-")
        if isinstance(value, bool):
            out.append(flag if value else "--no-" + prefix + f.name.replace("_", "-"))
        elif isinstance(value, tuple | list):
            out += [flag, *map(str, value)]
        elif value is None:
            continue
        else:
            out += [flag, str(value)]
    return out


def from_args(cls: type[T], args: argparse.Namespace, prefix: str = "") -> T:
    """Build dataclass ``cls`` from the flags :func:`add_dataclass_args` added."""
    values = {f.name: getattr(args, prefix.replace("-", "_") + f.name) for f in fields(cls)}  # type: ignore[arg-type]
    for f in fields(cls):  # type: ignore[arg-type]
        if isinstance(values[f.name], list):
            values[f.name] = tuple(values[f.name])
    return cls(**values)
