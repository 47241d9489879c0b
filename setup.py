"""Build the cffi C kernels (servelab.ffi._kernels_release / _kernels_hold) at install time.

All metadata lives in pyproject.toml; this file only adds the two extension modules, compiled by
``pip install [-e] .`` from ffi/kernels.c.  They are optional: without a C compiler the install
still succeeds and servelab.ffi falls back (compile-on-first-use cache, then NumPy) with a warning.
"""

from setuptools import setup

setup(cffi_modules=["ffi/_build.py:release", "ffi/_build.py:hold"])
