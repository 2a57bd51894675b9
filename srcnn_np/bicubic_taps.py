"""The taps of torch's bicubic upsampling along one axis, shared by the CPU and the GPU paths.

This module imports no Numba: `cubic_taps` is written in the subset of Python that Numba compiles,
and each path compiles it with the same flags (config.JIT_OPTIONS), cpu/kernels.py for its
bicubic kernels and gpu/runner.py for the tables it copies to the device, so both use the same
taps bit for bit and the GPU room does not import the CPU room (which probes the CPU at import).
"""
import numpy as np

CUBIC_A = np.float32(-0.75)  # torch's bicubic coefficient


def cubic_taps(in_len, scale):
    """Source indices (out_len, 4) int64 and weights (out_len, 4) float32 along one axis.

    Matches torch's upsample_bicubic2d with align_corners=False: the output pixel o samples
    the input at (o + 0.5) / scale - 0.5; the 4 taps around it are clamped to [0, in_len - 1].
    """
    out_len = in_len * scale
    idx = np.empty((out_len, 4), dtype=np.int64)
    wts = np.empty((out_len, 4), dtype=np.float32)
    inv = np.float32(1.0) / np.float32(scale)
    A = CUBIC_A
    for o in range(out_len):
        src = inv * (np.float32(o) + np.float32(0.5)) - np.float32(0.5)
        i0 = int(np.floor(src))
        t = src - np.float32(i0)
        # cubic convolution kernel, |x| <= 1 and 1 < |x| < 2 branches
        x1 = t + np.float32(1.0)
        wts[o, 0] = ((A * x1 - 5 * A) * x1 + 8 * A) * x1 - 4 * A
        wts[o, 1] = ((A + 2) * t - (A + 3)) * t * t + 1
        x2 = np.float32(1.0) - t
        wts[o, 2] = ((A + 2) * x2 - (A + 3)) * x2 * x2 + 1
        x3 = np.float32(2.0) - t
        wts[o, 3] = ((A * x3 - 5 * A) * x3 + 8 * A) * x3 - 4 * A
        for k in range(4):
            idx[o, k] = min(max(i0 - 1 + k, 0), in_len - 1)
    return idx, wts
