"""Calibration benchmarks: one module each, ``measure(params, warmups, samples) -> dict``."""
