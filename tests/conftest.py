"""Session-wide test settings."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

_CACHE: list[str] = []
sys.path.insert(0, str(Path(__file__).parent))  # shared test helpers: chromium_driver


def pytest_configure(config: object) -> None:
    # The zoo's seeded-weight cache (servers/zoo/weight_cache.py) in a folder of this session's
    # own, inherited by every server the tests start: a user's cache can neither help nor
    # mislead a test, and the models a session builds more than once are built once.
    if "SERVELAB_CACHE" not in os.environ:
        _CACHE.append(tempfile.mkdtemp(prefix="servelab-test-cache-"))
        os.environ["SERVELAB_CACHE"] = _CACHE[0]


def pytest_unconfigure(config: object) -> None:
    for path in _CACHE:
        shutil.rmtree(path, ignore_errors=True)
