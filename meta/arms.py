"""Arms: the server configurations the meta-scheduler chooses among.

An arm is a :class:`~servelab.core.config.ServerConfig` — the same object drives the simulator
and the live servers — plus a short human label (``threads×4 sjf``).  Its id is the config's
``config_id``.  The default list is the seed's space::

    threads            × {fifo, priority, sjf, mlfq} × workers {2, 4, 8}   12 arms
    processes          × {fifo, priority, sjf, mlfq} × workers {1, 2, 4}   12 arms
    async offload=thread  × {fifo, priority, sjf, mlfq} × workers {2, 4}    8 arms
    async offload=process × {fifo, priority, sjf, mlfq} × workers {2}       4 arms

36 arms.  (async with a thread offload is a thread pool behind one event loop: 8 threads add
nothing the threads arms do not already show; one process behind a loop is the processes×1
arm with a different front end, so async/process keeps 2 — each async pool beyond that only
multiplies simulation time.)

An **arm file** (YAML or JSON) restricts or extends the list.  Either a plain list of config
dicts (exactly those arms), or a mapping with any of:

``base``
    fields every arm below starts from (e.g. ``{models: [mobilenet_v2], queue_capacity: 512}``);
``default``
    start from the default list (``true`` unless ``arms`` or ``product`` is given);
``product``
    a mapping field → list of values (or a list of such mappings): their cartesian products;
``arms``
    a list of partial config dicts, added;
``restrict``
    field → allowed values: drop every arm outside them (applied after adding);
``exclude``
    a list of partial dicts: drop every arm matching all the fields of one.

Arms that are the same server (offload outside async, say) are merged (``canonical``), order is
kept, and the result must not be empty.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from servelab.core.config import ServerConfig
from servelab.core.profile_parts import setup_name
from servelab.sim.sweep import canonical

DEFAULT_SPACE: tuple[dict[str, Any], ...] = (
    {"concurrency": ["threads"], "workers": [2, 4, 8]},
    {"concurrency": ["processes"], "workers": [1, 2, 4]},
    {"concurrency": ["async"], "offload": ["thread"], "workers": [2, 4]},
    {"concurrency": ["async"], "offload": ["process"], "workers": [2]},
)
"""The default arm space as products (each × every scheduler)."""

SCHEDULER_ORDER = ("fifo", "priority", "sjf", "mlfq")

_FILE_KEYS = ("base", "default", "product", "arms", "restrict", "exclude")


def label(config: ServerConfig) -> str:
    """A short human label: ``threads×4 sjf``, ``procs×2 fifo``, ``async/thread×2 mlfq``."""
    kind = {"threads": "threads", "processes": "procs"}.get(config.concurrency, "")
    if config.concurrency == "async":
        kind = f"async/{config.offload}"
    extra = ""
    if config.max_batch > 1:
        extra += f" b{config.max_batch}"
    if config.intra_op_threads > 1:
        extra += f" t{config.intra_op_threads}"
    if config.model_lock != "none" and config.concurrency in ("threads", "async"):
        extra += f" lock={config.model_lock}"
    return f"{kind}×{config.workers} {config.scheduler}{extra}"


@dataclass(frozen=True)
class Arm:
    """One arm: its index in the list, its server configuration and a label."""

    index: int
    config: ServerConfig
    label: str

    @property
    def id(self) -> str:
        return self.config.config_id

    @property
    def setup(self) -> str:
        """The server setup (``threads``, ``processes``, ``async-thread`` ...): arms of one
        setup run in the same backend, so moving between them is applied in place."""
        return setup_name(self.config.concurrency, self.config.offload)


class ArmSet(Sequence[Arm]):
    """An ordered list of arms; policies see arm indices, this maps them to configs."""

    def __init__(self, configs: Iterable[ServerConfig]):
        seen: dict[str, ServerConfig] = {}
        for cfg in configs:
            c = canonical(cfg)
            seen.setdefault(c.config_id, c)
        if not seen:
            raise ValueError("the arm list is empty")
        self._arms = tuple(Arm(i, c, label(c)) for i, c in enumerate(seen.values()))

    def __len__(self) -> int:
        return len(self._arms)

    def __getitem__(self, i: int) -> Arm:  # type: ignore[override]
        return self._arms[i]

    def __iter__(self) -> Iterator[Arm]:
        return iter(self._arms)

    @property
    def configs(self) -> list[ServerConfig]:
        return [a.config for a in self._arms]

    @property
    def labels(self) -> list[str]:
        return [a.label for a in self._arms]

    @property
    def ids(self) -> list[str]:
        return [a.id for a in self._arms]

    def setups(self) -> list[str]:
        return [a.setup for a in self._arms]

    def index(self, arm_id: str) -> int:  # type: ignore[override]
        for a in self._arms:
            if a.id == arm_id:
                return a.index
        raise ValueError(f"no arm {arm_id!r}")

    def to_list(self) -> list[dict[str, Any]]:
        """JSON form: one dict per arm (``id``, ``label``, ``config``)."""
        return [{"id": a.id, "label": a.label, "config": a.config.to_dict()} for a in self._arms]

    @classmethod
    def from_list(cls, items: Sequence[Mapping[str, Any]]) -> ArmSet:
        """Read :meth:`to_list` back (or plain config dicts)."""
        return cls(ServerConfig.from_dict(dict(it.get("config", it))) for it in items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ArmSet) and self.ids == other.ids

    def __hash__(self) -> int:
        return hash(tuple(self.ids))

    def __repr__(self) -> str:
        return f"ArmSet({len(self)} arms)"


def product(spec: Mapping[str, Sequence[Any]], base: ServerConfig) -> list[ServerConfig]:
    """Every combination of ``spec`` (field → values) over ``base``; a missing ``scheduler``
    means every scheduler."""
    spec = dict(spec)
    spec.setdefault("scheduler", list(SCHEDULER_ORDER))
    keys = list(spec)
    for k in keys:
        if isinstance(spec[k], str | int | float):
            spec[k] = [spec[k]]
    out = []
    for combo in itertools.product(*(spec[k] for k in keys)):
        values = {k: tuple(v) if k == "models" else v for k, v in zip(keys, combo, strict=True)}
        out.append(replace(base, **values))
    return out


def default_arms(base: ServerConfig | None = None) -> ArmSet:
    """The seed's space (36 arms, see the module docstring)."""
    base = base if base is not None else ServerConfig()
    return ArmSet(c for spec in DEFAULT_SPACE for c in product(spec, base))


def _matches(config: ServerConfig, partial: Mapping[str, Any]) -> bool:
    d = config.to_dict()
    for k, v in partial.items():
        if k not in d:
            raise ValueError(f"arm file: unknown field {k!r}")
        want = list(v) if k == "models" else v
        if d[k] != want:
            return False
    return True


def arms_from_spec(spec: Any, base: ServerConfig | None = None) -> ArmSet:
    """Build an arm list from a parsed arm file (see the module docstring)."""
    base = base if base is not None else ServerConfig()
    if isinstance(spec, list):
        return ArmSet(_partial(base, d) for d in spec)
    if not isinstance(spec, Mapping):
        raise ValueError("arm file: expected a list of configs or a mapping")
    unknown = sorted(set(spec) - set(_FILE_KEYS))
    if unknown:
        raise ValueError(f"arm file: unknown key(s) {unknown}; valid: {', '.join(_FILE_KEYS)}")
    if spec.get("base"):
        base = _partial(base, spec["base"])
    use_default = spec.get("default", not ("arms" in spec or "product" in spec))
    configs: list[ServerConfig] = list(default_arms(base).configs) if use_default else []
    products = spec.get("product") or []
    for p in [products] if isinstance(products, Mapping) else products:
        configs += product(p, base)
    configs += [_partial(base, d) for d in spec.get("arms") or []]
    restrict = spec.get("restrict") or {}
    for k, allowed in restrict.items():
        allowed = allowed if isinstance(allowed, list) else [allowed]
        configs = [c for c in configs if any(_matches(c, {k: v}) for v in allowed)]
    for ex in spec.get("exclude") or []:
        configs = [c for c in configs if not _matches(c, ex)]
    if not configs:
        raise ValueError("arm file: no arm left after restrict / exclude")
    return ArmSet(configs)


def _partial(base: ServerConfig, d: Mapping[str, Any]) -> ServerConfig:
    if not isinstance(d, Mapping):
        raise ValueError(f"arm file: an arm must be a mapping of config fields, got {d!r}")
    merged = {**base.to_dict(), **d}
    return ServerConfig.from_dict(merged)


def load_arms(path: str | Path | None, base: ServerConfig | None = None) -> ArmSet:
    """The arms of an arm file (YAML or JSON), or the default list when ``path`` is None."""
    if path is None:
        return default_arms(base)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"arm file not found: {path}")
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return arms_from_spec(data, base)
