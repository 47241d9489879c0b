"""Before a run: does the target serve the workload's models?

A workload for a model the server lacks would otherwise send every request to a 404 and report
a run of errors.  :func:`check_models` asks ``GET /v2/models/{name}/ready`` for each model (the
OIP readiness endpoint; ``GET /v2/models/{name}``, the metadata, when readiness is not
answered), and raises :class:`MissingModels` naming every model the target answers 404 for.
A target that cannot be asked (refused, no answer within the check's timeout) is not a verdict:
the check logs a warning and the run goes ahead, recording what happens to its requests.
"""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Sequence

from servelab.loadgen.payloads import Target

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 2.0
"""How long the whole check may take (a server that does not answer cannot hold the run)."""


class MissingModels(ValueError):
    """The target does not serve some of the workload's models."""

    def __init__(self, target: Target, missing: dict[str, str]):
        self.missing = missing
        detail = "; ".join(f"{m}: {why}" for m, why in missing.items())
        super().__init__(
            f"{target.url} does not serve model(s) {', '.join(missing)} of the workload ({detail}); "
            "start the server with those models (servelab serve --models ...) or choose a "
            "workload for the models it serves"
        )


def _get(conn: http.client.HTTPConnection, path: str) -> tuple[int, str]:
    conn.request("GET", path, headers={"Connection": "keep-alive"})
    resp = conn.getresponse()
    body = resp.read(64 * 1024)
    try:
        message = str(json.loads(body).get("error", ""))
    except (ValueError, AttributeError):
        message = body[:200].decode("utf-8", "replace")
    return resp.status, message


def check_models(target: Target, models: Sequence[str], timeout: float = CHECK_TIMEOUT_S) -> None:
    """Raise :class:`MissingModels` if ``target`` answers 404 for any of ``models``."""
    missing: dict[str, str] = {}
    conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    try:
        for model in dict.fromkeys(models):
            base = f"{target.prefix}/v2/models/{model}"
            status, message = _get(conn, f"{base}/ready")
            if status == 404:  # an unknown model, or no readiness endpoint: ask the metadata
                status, message = _get(conn, base)
            if status == 404:
                missing[model] = f"404 {message}".strip()
            elif status == 503:
                log.warning("%s: model %s is not ready (503); sending anyway", target.url, model)
            elif status != 200:
                log.warning("%s: model %s check answered %d; sending anyway", target.url, model,
                            status)
    except (OSError, http.client.HTTPException) as exc:
        log.warning("could not check the models served by %s (%s); sending anyway", target.url,
                    exc or type(exc).__name__)
        return
    finally:
        conn.close()
    if missing:
        raise MissingModels(target, missing)
