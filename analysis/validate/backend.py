"""The live side of a validation, behind one small interface.

``backend.session(config, log)`` is a context manager yielding a :class:`Session` — one server
serving ``config`` for as long as the block runs — and ``session.run(spec)`` drives it with one
open-loop run of ``spec`` and returns the per-request records (the shared schema).
``backend.speed(models, variant)`` is a speed probe of the machine the sessions run on (None
where there is none); ``backend.close()`` ends what the backend keeps between sessions.  The
validation summarizes those records with the simulator's own summary function, so live and
simulated figures are defined identically.

:class:`ServerBackend` is the real thing: ``servelab serve`` in a subprocess and the load
generator (:func:`servelab.loadgen.runner.run_load`) in this one.  :class:`SimBackend` answers
with the simulator under a profile of its own — a stand-in "live" system with known costs, for
tests (and for checking the attribution).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from servelab.core.config import ServerConfig
from servelab.core.profile import Profile
from servelab.core.speed import Speed
from servelab.core.workload import WorkloadSpec

log = logging.getLogger(__name__)


class Session(Protocol):
    def run(self, spec: WorkloadSpec) -> pd.DataFrame: ...


class Backend(Protocol):
    def session(self, config: ServerConfig,
                log: Path | None = None) -> AbstractContextManager[Session]: ...

    def speed(self, models: Sequence[str], variant: str) -> Speed | None: ...

    def close(self) -> None: ...


@dataclass
class _LoadSession:
    url: str
    config_id: str
    timeout_s: float

    def run(self, spec: WorkloadSpec) -> pd.DataFrame:
        from servelab.loadgen.generator import SenderOptions
        from servelab.loadgen.runner import LoadConfig, run_load

        cfg = LoadConfig(target=self.url, config_id=self.config_id, progress=False)
        return run_load(cfg, SenderOptions(timeout=self.timeout_s), spec=spec, write=False).records


@dataclass
class ServerBackend:
    """A live server subprocess per session (``variant``: the model size it serves), and a
    speed-probe child process kept for the whole run (started at the first probe)."""

    variant: str = "full"
    timeout_s: float = 30.0
    _probe: Any = field(default=None, init=False, repr=False)
    _probe_key: tuple[tuple[str, ...], str] | None = field(default=None, init=False, repr=False)

    def speed(self, models: Sequence[str], variant: str) -> Speed | None:
        from servelab.calibrate.speed import SpeedProbe

        key = (tuple(models), variant)
        if self._probe is None or key != self._probe_key:
            self.close()
            self._probe, self._probe_key = SpeedProbe(models, variant), key
        result: Speed = self._probe.measure()
        return result

    def close(self) -> None:
        if self._probe is not None:
            self._probe.close()
            self._probe = None

    @contextmanager
    def _session(self, config: ServerConfig, log: Path | None) -> Iterator[Session]:
        from servelab.servers.base import ServeOptions
        from servelab.servers.launch import ServerProcess

        with ServerProcess(config, ServeOptions(port=0, variant=self.variant), log=log) as srv:
            yield _LoadSession(srv.url, config.config_id, self.timeout_s)

    def session(self, config: ServerConfig,
                log: Path | None = None) -> AbstractContextManager[Session]:
        return self._session(config, log)


@dataclass
class _SimSession:
    config: ServerConfig
    profile: Profile

    def run(self, spec: WorkloadSpec) -> pd.DataFrame:
        from servelab.sim.run import simulate

        return simulate(self.config, spec, self.profile, seed=spec.seed).records


@dataclass(frozen=True)
class SimBackend:
    """The simulator under ``profile`` playing the live system; ``probe``: the timings its
    speed probe reports (none: it reports none)."""

    profile: Profile
    probe: Mapping[str, float] = field(default_factory=dict)

    def speed(self, models: Sequence[str], variant: str) -> Speed | None:
        return Speed(dict(self.probe)) if self.probe else None

    def close(self) -> None:
        pass

    @contextmanager
    def _session(self, config: ServerConfig) -> Iterator[Session]:
        yield _SimSession(config, self.profile)

    def session(self, config: ServerConfig,
                log: Path | None = None) -> AbstractContextManager[Session]:
        return self._session(config)
