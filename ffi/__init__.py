"""servelab.ffi -- C kernels (cffi, API mode) built to release or to hold the GIL, and their
NumPy reference.  Below the servers: the zoo models that run on them are the servers'
(servers/kernel_models.py, ``apply_kernel``), the thread-scaling study that times them is
analysis/gil_study.py (``servelab gil-study``).

    from servelab.ffi import get_kernels
    k = get_kernels("c-release")             # torch | c-release | c-hold | python
    x = k.preprocess_images(images_uint8_nhwc)
"""

from servelab.ffi.kernels import KERNELS, Kernels, LstmWeights, get_kernels

__all__ = ["KERNELS", "Kernels", "LstmWeights", "get_kernels"]
