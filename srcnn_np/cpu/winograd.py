"""Winograd F(4, 5) along rows: 4 outputs of a 5-tap row correlation from 8 multiplications.

A 5x5 conv is 5 row correlations (one per kernel row ky) summed. Along a row, the outputs
y[i] = sum_k g[k] d[i + k] (i < 4, k < 5) of a tile of 4 output columns read 8 inputs d[0..7], and

    y = AT @ ((G @ g) * (BT @ d))        AT (4, 8), G (8, 5), BT (8, 8)

(Toom-Cook on the points 0, 1, -1, 2, -2, 1/2, -1/2 and infinity). The weights' side, G @ g, is
computed once per weight file; the inputs' side, BT @ d, once per input row and tile; then each
output row costs 5 x 8 multiply-adds per tile, input channel and output channel instead of
5 x 5 x 4: 0.4x the work of the direct conv (srcnn_np.cpu.kernels runs it, summing over channels).

Accuracy: on the shipped x2 weights and a real image, conv2's float32 result is within 2.2e-6 of
float64 (the direct float32 conv: 1.3e-6). Larger tiles lose more (F(6, 5): 2.6e-5), so 4 it is.
Every output pixel's rounding depends on its place in its tile; the kernels anchor tiles to the
image's column 0, so that windows of one image give the same bits as the whole image.
"""
import numpy as np

TAPS = 5  # kernel width the transform is for
TILE = 4  # output columns per tile
POINTS = TILE + TAPS - 1  # 8 transformed values per tile
_FINITE_POINTS = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5)  # and infinity


def transform_matrices() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(AT (4, 8), G (8, 5), BT (8, 8)) float64 with y = AT @ ((G @ g) * (BT @ d)).

    AT and G are the Toom-Cook evaluation and interpolation matrices; BT is the one matrix that
    makes the identity hold for every g and d (a linear system in its entries), solved for and
    checked rather than typed in.
    """
    at = np.zeros((TILE, POINTS))
    g = np.zeros((POINTS, TAPS))
    for j, a in enumerate(_FINITE_POINTS):
        at[:, j] = [a ** i for i in range(TILE)]
        norm = np.prod([a - b for b in _FINITE_POINTS if b != a])
        g[j] = [a ** k / norm for k in range(TAPS)]
    at[TILE - 1, POINTS - 1] = 1.0  # the point at infinity
    g[POINTS - 1, TAPS - 1] = 1.0
    # sum_j at[i, j] g[j, k] bt[j, l] == (l == i + k) for every i, k, l: linear in bt's entries
    system = np.zeros((TILE, TAPS, POINTS, POINTS, POINTS))
    target = np.zeros((TILE, TAPS, POINTS))
    for i in range(TILE):
        for k in range(TAPS):
            target[i, k, i + k] = 1.0
            for l in range(POINTS):
                system[i, k, l, :, l] = at[i] * g[:, k]
    bt = np.linalg.lstsq(system.reshape(-1, POINTS * POINTS), target.ravel(), rcond=None)[0]
    bt = np.round(bt.reshape(POINTS, POINTS) * 1024) / 1024  # quarters in fact: exact zeros stay zeros
    residual = np.abs(system.reshape(-1, POINTS * POINTS) @ bt.ravel() - target.ravel()).max()
    assert residual < 1e-9, f"Winograd F(4, 5) transform does not hold: residual {residual}"
    return at, g, bt


_AT, _G, _BT = transform_matrices()
AT = _AT.astype(np.float32)  # (4, 8) output transform, as the kernels use it
BT = _BT.astype(np.float32)  # (8, 8) input transform (its entries are exact in float32)


def transform_weights(w: np.ndarray) -> np.ndarray:
    """Conv weights (5, KW=5, Cin, Cout) float32 -> (5, 8, Cin, Cout) float32: G @ each kernel row.

    Computed in float64 and rounded once, so the transform adds no error of its own.
    """
    if w.ndim != 4 or w.shape[1] != TAPS:
        raise ValueError(f"Winograd F(4, 5) needs (KH, 5, Cin, Cout) weights, got shape {w.shape}")
    u = np.einsum("jk,ykco->yjco", _G, w.astype(np.float64))
    return np.ascontiguousarray(u, dtype=np.float32)
