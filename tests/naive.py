"""Slow, obviously correct NumPy oracles for the kernels (float64 loops and einsum)."""
import math

import numpy as np

from srcnn_np.model import KernelWeights

CUBIC_A = -0.75


def cubic_weight(x: float) -> float:
    """Keys' cubic convolution kernel with a = -0.75 (torch's), at distance x."""
    x = abs(x)
    if x <= 1:
        return (CUBIC_A + 2) * x**3 - (CUBIC_A + 3) * x**2 + 1
    if x < 2:
        return CUBIC_A * x**3 - 5 * CUBIC_A * x**2 + 8 * CUBIC_A * x - 4 * CUBIC_A
    return 0.0


def bicubic(img: np.ndarray, scale: int) -> np.ndarray:
    """(H, W) -> (scale H, scale W) float64, align_corners=False, taps clamped to the image."""
    H, W = img.shape

    def axis_matrix(n):
        m = np.zeros((n * scale, n))
        for o in range(n * scale):
            src = (o + 0.5) / scale - 0.5
            i0 = math.floor(src)
            for k in range(-1, 3):
                m[o, min(max(i0 + k, 0), n - 1)] += cubic_weight(src - (i0 + k))
        return m

    return axis_matrix(H) @ img.astype(np.float64) @ axis_matrix(W).T


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray, relu: bool) -> np.ndarray:
    """x (H, W, Cin), w (K, K, Cin, Cout), b (Cout,) -> (H, W, Cout) float64, zero padding K // 2."""
    H, W, _ = x.shape
    K = w.shape[0]
    p = K // 2
    xp = np.pad(x.astype(np.float64), ((p, p), (p, p), (0, 0)))
    out = np.zeros((H, W, w.shape[3])) + b
    for dy in range(K):
        for dx in range(K):
            out += np.einsum("hwc,co->hwo", xp[dy:dy + H, dx:dx + W], w[dy, dx].astype(np.float64))
    return np.maximum(out, 0.0) if relu else out


def srcnn_stages(lr: np.ndarray, kw: KernelWeights) -> dict:
    """The SRCNN stages in float64, keyed like srcnn_np.model.forward_stages."""
    up = bicubic(lr, kw.scale)
    conv1 = conv2d(up[:, :, None], kw.w1, kw.b1, True)
    conv2 = conv2d(conv1, kw.w2, kw.b2, True)
    out = conv2d(conv2, kw.w3, kw.b3, False)[:, :, 0]
    return {"upsampled": up, "conv1": conv1, "conv2": conv2, "output": out}
