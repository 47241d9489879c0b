"""servelab.ffi -- C kernels (cffi, API mode) built to release or to hold the GIL, their NumPy
reference, and the GIL thread-scaling study (``servelab gil-study``).

    from servelab.ffi import get_kernels, apply_kernel
    k = get_kernels("c-release")             # torch | c-release | c-hold | python
    x = k.preprocess_images(images_uint8_nhwc)
    model = apply_kernel(get_model("lstm_forecaster"), "c-hold")   # servers' hook
"""

from servelab.ffi.kernels import KERNELS, Kernels, LstmWeights, apply_kernel, get_kernels

__all__ = ["KERNELS", "Kernels", "LstmWeights", "apply_kernel", "get_kernels"]
