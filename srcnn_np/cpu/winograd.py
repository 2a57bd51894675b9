"""Winograd F(4x4, 5x5): a 4x4 tile of a 5x5 conv's outputs from 64 multiplications instead of 400.

Along one axis, F(4, 5): the outputs y[i] = sum_k g[k] d[i + k] (i < 4, k < 5) of a tile of 4
read 8 inputs d[0..7], and

    y = AT @ ((G @ g) * (BT @ d))        AT (4, 8), G (8, 5), BT (8, 8)

(Toom-Cook on the points 0, 1, -1, 2, -2, 1/2, -1/2 and infinity). Nested along rows and columns,
a 4x4 output tile of a 5x5 conv reads an 8x8 input tile D and

    Y = AT @ ((G @ g @ G^T) * (BT @ D @ BT^T)) @ AT^T

per input and output channel, summed over the input channels before the output transform. The
weights' side, G g G^T, is computed once per weight file; the inputs' side once per tile and
input channel (srcnn_np.cpu.kernels: along rows, then columns); then each tile costs 64
multiply-adds per input and output channel instead of 400: 0.16x the direct conv's.

Accuracy (dev/winograd_accuracy.py: shipped x2 weights, a real image, float32 against float64):
conv2 by F(4x4, 5x5) 5.2e-6, by F(4, 5) along rows 2.2e-6 (the kernels' algorithm before),
torch's direct float32 conv 4.2e-6; larger tiles lose more (F(6, 5) along rows alone 2.6e-5).
Every output pixel's rounding depends on its place in its tile; the kernels anchor tiles to the
image's row and column 0, so that a window of an image gives the whole image's bits wherever its
tiles read only the window's data.
"""
import numpy as np

TAPS = 5  # kernel width the transform is for
TILE = 4  # output columns per tile
POINTS = TILE + TAPS - 1  # 8 transformed values per tile
MULTIPLY_ADD_RATIO = (POINTS / (TILE * TAPS)) ** 2  # the conv's multiply-adds against the direct conv's: 0.16
FINITE_POINTS = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5)  # and infinity


def transform_matrices(tile: int = TILE, finite_points=FINITE_POINTS,
                       taps: int = TAPS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(AT (tile, n), G (n, taps), BT (n, n)) float64 with y = AT @ ((G @ g) * (BT @ d)), n = tile + taps - 1.

    AT and G are the Toom-Cook evaluation and interpolation matrices on finite_points (n - 1 of
    them) and infinity; BT is the one matrix that makes the identity hold for every g and d (a
    linear system in its entries), solved for and checked rather than typed in. Other tiles, points
    and taps are for the experiment that chose these (dev/winograd_accuracy.py).
    """
    n = tile + taps - 1
    if len(finite_points) != n - 1:
        raise ValueError(f"F({tile}, {taps}) needs {n - 1} finite points, got {len(finite_points)}")
    at = np.zeros((tile, n))
    g = np.zeros((n, taps))
    for j, a in enumerate(finite_points):
        at[:, j] = [a ** i for i in range(tile)]
        norm = np.prod([a - b for b in finite_points if b != a])
        g[j] = [a ** k / norm for k in range(taps)]
    at[tile - 1, n - 1] = 1.0  # the point at infinity
    g[n - 1, taps - 1] = 1.0
    # sum_j at[i, j] g[j, k] bt[j, l] == (l == i + k) for every i, k, l: linear in bt's entries
    system = np.zeros((tile, taps, n, n, n))
    target = np.zeros((tile, taps, n))
    for i in range(tile):
        for k in range(taps):
            target[i, k, i + k] = 1.0
            for l in range(n):
                system[i, k, l, :, l] = at[i] * g[:, k]
    bt = np.linalg.lstsq(system.reshape(-1, n * n), target.ravel(), rcond=None)[0]
    bt = np.round(bt.reshape(n, n) * 1024) / 1024  # small fractions in fact: exact zeros stay zeros
    residual = np.abs(system.reshape(-1, n * n) @ bt.ravel() - target.ravel()).max()
    if residual > 1e-9:
        raise ArithmeticError(f"Winograd F({tile}, {taps}) transform does not hold: residual {residual}")
    return at, g, bt


_AT, _G, _BT = transform_matrices()
AT = _AT.astype(np.float32)  # (4, 8) output transform, as the kernels use it
BT = _BT.astype(np.float32)  # (8, 8) input transform (its entries are exact in float32)


def transform_weights(w: np.ndarray) -> np.ndarray:
    """Conv weights (5, 5, Cin, Cout) float32 -> (8, 8, Cin, Cout) float32: G @ each kernel @ G^T.

    Computed in float64 and rounded once, so the transform adds no error of its own.
    """
    if w.ndim != 4 or w.shape[:2] != (TAPS, TAPS):
        raise ValueError(f"Winograd F(4x4, 5x5) needs (5, 5, Cin, Cout) weights, got shape {w.shape}")
    u = np.einsum("iy,jx,yxco->ijco", _G, _G, w.astype(np.float64))
    return np.ascontiguousarray(u, dtype=np.float32)
