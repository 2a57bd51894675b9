"""The taps of torch's bicubic upsampling along one axis, shared by the CPU and the GPU paths.

Plain NumPy (nothing for Numba to compile on the first run), so both paths use the same taps bit
for bit, and the GPU room does not import the CPU room (which probes the CPU at import).
"""
import numpy as np

CUBIC_A = np.float32(-0.75)  # torch's bicubic coefficient


def fma32(a, b, c) -> np.ndarray:
    """a * b + c for float32 operands, rounded to float32 once, as a fused multiply-add rounds.

    The float64 product of two float32 values is exact; the float64 sum is exact too but where the
    operands' exponents lie far apart (there it is rounded twice, which can differ in a last bit).
    """
    return (np.float64(a) * np.float64(b) + np.float64(c)).astype(np.float32)


def cubic_taps(in_len: int, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices (out_len, 4) int64 and weights (out_len, 4) float32 along one axis.

    Matches torch's upsample_bicubic2d with align_corners=False: the output pixel o samples
    the input at (o + 0.5) / scale - 0.5; the 4 taps around it are clamped to [0, in_len - 1].
    float32 with fused multiply-adds, as torch's CPU kernel computes them: plain float32 steps
    would put the sample positions of a wide image at x3 up to 2e-4 off torch's
    (tests/test_parity.py::test_bicubic_taps_far_from_origin).
    """
    one, A = np.float32(1.0), CUBIC_A
    o = np.arange(in_len * scale, dtype=np.float32)
    src = fma32(one / np.float32(scale), o + np.float32(0.5), np.float32(-0.5))
    i0 = np.floor(src)
    t = src - i0
    x1, x2, x3 = t + one, one - t, np.float32(2.0) - t  # distances to the 4 taps: 1 < |x| < 2 or |x| <= 1

    def far(x):  # A|x|^3 - 5A|x|^2 + 8A|x| - 4A, 1 < |x| < 2
        return fma32(fma32(fma32(A, x, -5 * A), x, 8 * A), x, -4 * A)

    def near(x):  # (A + 2)|x|^3 - (A + 3)|x|^2 + 1, |x| <= 1
        return fma32(fma32(A + 2, x, -(A + 3)) * x, x, one)

    wts = np.stack([far(x1), near(t), near(x2), far(x3)], axis=1)
    idx = np.clip(i0.astype(np.int64)[:, None] + np.arange(-1, 3), 0, in_len - 1)
    return idx, wts
