"""Shared by the scheduling study's tests: the shipped mixed workload."""

from __future__ import annotations

import pytest

from servelab.workloads import load_workload


@pytest.fixture(scope="module")
def mixed():
    """The study's workload: MobileNetV2, the LSTM and DistilBERT, mostly fast requests."""
    return load_workload("mixed")
