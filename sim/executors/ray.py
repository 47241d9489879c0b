"""Run a sweep on a Ray cluster (``--executor ray [--address ...]``).

Ray is an optional extra (``pip install 'servelab[ray]'``) and is imported only when this
executor is built.  Points travel to the cluster as plain data and results come back to the
driver, which alone writes files — so the workers need no shared filesystem.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from servelab.sim.executors.base import Executor


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RuntimeError(
            "the ray executor needs Ray, which is not installed: "
            "pip install 'servelab[ray]' (or use --executor local)"
        ) from None
    return ray


class RayExecutor(Executor):
    """Submit each point as a Ray task; ``address`` as for ``ray.init`` (None: start or join a
    local instance, ``"auto"``: the running cluster).  ``jobs`` bounds the tasks in flight."""

    name = "ray"

    def __init__(self, address: str | None = None, jobs: int | None = None):
        self.ray = _import_ray()
        self.address = address
        self.jobs = jobs
        if not self.ray.is_initialized():
            self.ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
            self._started = True
        else:
            self._started = False

    def map_unordered(
        self, fn: Callable[[Any], Any], items: Sequence[Any]
    ) -> Iterator[tuple[Any, Any]]:
        ray = self.ray
        remote = ray.remote(fn)
        limit = self.jobs * 2 if self.jobs else max(int(ray.cluster_resources().get("CPU", 1)) * 2, 1)
        pending: dict[Any, Any] = {}
        todo = iter(items)
        exhausted = False
        while pending or not exhausted:
            while not exhausted and len(pending) < limit:
                item = next(todo, _END)
                if item is _END:
                    exhausted = True
                    break
                pending[remote.remote(item)] = item
            if not pending:
                break
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                item = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # reported per point, never raised
                    result = exc
                yield item, result

    def close(self) -> None:
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
            self._started = False


_END = object()
