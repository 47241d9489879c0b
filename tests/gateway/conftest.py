"""One live gateway for the whole gateway test session (starting backends costs seconds)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .gateway_helpers import GatewayThread


@pytest.fixture(scope="session")
def gateway() -> Iterator[GatewayThread]:
    """A gateway over the noop arms of ``ARMS``, one warm backend at most (so every switch to
    another process drains and stops the old one), 0.25 s decision windows."""
    gw = GatewayThread(window_s=0.25, max_warm=1).start()
    try:
        yield gw
    finally:
        gw.stop()
