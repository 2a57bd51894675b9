"""Numba CPU kernels: bicubic upsampling and the SRCNN convolutions.

Layouts: images are (H, W) float32; feature maps are channels-last (H, W, C) float32;
conv weights are (KH, KW, Cin, Cout) float32 (see model.kernel_layout for the OIHW conversion).
Convolutions pad with zeros by K // 2 on every side, so the output has the input's size, as
torch's Conv2d(padding=K // 2) does.
"""
import numpy as np
from numba import njit, prange

from .config import JIT_OPTIONS

CUBIC_A = np.float32(-0.75)  # torch's bicubic coefficient


@njit(**JIT_OPTIONS)
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


@njit(parallel=True, **JIT_OPTIONS)
def bicubic_upsample(img, scale):
    """(H, W) float32 -> (scale*H, scale*W) float32, equal to torch bicubic (align_corners=False)."""
    H, W = img.shape
    xi, xw = cubic_taps(W, scale)
    yi, yw = cubic_taps(H, scale)
    rows = np.empty((H, W * scale), dtype=np.float32)  # horizontal pass first, as torch does
    for y in prange(H):
        for o in range(W * scale):
            acc = np.float32(0.0)
            for k in range(4):
                acc += xw[o, k] * img[y, xi[o, k]]
            rows[y, o] = acc
    out = np.empty((H * scale, W * scale), dtype=np.float32)
    for o in prange(H * scale):
        for x in range(W * scale):
            acc = np.float32(0.0)
            for k in range(4):
                acc += yw[o, k] * rows[yi[o, k], x]
            out[o, x] = acc
    return out


@njit(parallel=True, **JIT_OPTIONS)
def conv2d(x, w, b, relu):
    """Same-size 2-D convolution, channels-last.

    x (H, W, Cin) float32, w (K, K, Cin, Cout) float32, b (Cout,) float32 -> (H, W, Cout) float32,
    zero padding K // 2, ReLU applied when `relu` is True.
    """
    H, W, Cin = x.shape
    K = w.shape[0]
    Cout = w.shape[3]
    p = K // 2
    xp = np.zeros((H + 2 * p, W + 2 * p, Cin), dtype=np.float32)
    xp[p:p + H, p:p + W, :] = x
    out = np.empty((H, W, Cout), dtype=np.float32)
    for y in prange(H):
        acc = np.empty((W, Cout), dtype=np.float32)
        for i in range(W):
            acc[i, :] = b
        for dy in range(K):
            for dx in range(K):
                for c in range(Cin):
                    wv = w[dy, dx, c]
                    for i in range(W):
                        v = xp[y + dy, i + dx, c]
                        for o in range(Cout):
                            acc[i, o] += v * wv[o]
        if relu:
            for i in range(W):
                for o in range(Cout):
                    out[y, i, o] = max(acc[i, o], np.float32(0.0))
        else:
            out[y] = acc
    return out
