"""Experiment: which Winograd tile for conv2 (5x5, 64 -> 32), and for conv1 (9x9)? Error of each in float32.

Run: python dev/winograd_accuracy.py        (needs torch and scikit-image: pip install -e ".[test]")

conv2 of the shipped x2 astro model on a real image (scikit-image's astronaut, green channel,
upsampled x2 as the model does) is computed in float64 (the truth), directly in float32 (torch),
and by Winograd F(m, 5) along rows in float32, simulated in numpy the way the kernels do it:
weights transformed in float64 then rounded, inputs transformed, products summed over the 5 rows
and 64 channels in float32, output transform in float32; and by 2D Winograd F(m x m, 5 x 5) (the
same 1D transforms along rows and columns, 64 products a 4x4 tile summed over the channels).
Result on the 2-core AMD EPYC (Zen 3) VM, 2026-12-07 (torch 2.13.0's direct float32 conv erred
1.2e-06 in an earlier run on another machine):

    direct float32        4.2e-06
    F(2, 5)  2.7e-06   0.60x the multiply-adds of the direct conv
    F(3, 5)  2.1e-06   0.47x
    F(4, 5)  2.2e-06   0.40x      <- srcnn_np.cpu.winograd
    F(4, 5)  1.5e-05   with the point 3 instead of -1/2
    F(6, 5)  2.6e-05   0.33x      too close to the 1e-4 parity bound once conv3 follows
    F(2x2, 5x5)  2.9e-06   0.36x
    F(3x3, 5x5)  3.4e-06   0.22x
    F(4x4, 5x5)  5.2e-06   0.16x  2.4x the error of F(4, 5), still 1/19 of the 1e-4 bound

and for conv1 (9x9, 1 -> 64, outputs up to 1.56) along rows, against its direct float32 6.8e-07:

    F(2, 9)  1.3e-05   0.56x   (points 0, +-1, +-2, +-1/2, +-3)
    F(4, 9)  1.0e-05   0.33x   (points 0, +-1, +-2, +-1/2, +-4, +-1/4)
    15-19x the direct error in the first layer, which conv2 and conv3 then sum over 1,600 and
    800 terms: not "far inside" the 1e-4 bound, so conv1 stays direct (dev/conv1_blocking.py).
"""
import numpy as np
import torch
import torch.nn.functional as F
from skimage import data

import srcnn_np
from srcnn_np.cpu.winograd import TAPS, transform_matrices

CANDIDATES = [(2, (0, 1, -1, 2, -2)), (3, (0, 1, -1, 2, -2, .5)), (4, (0, 1, -1, 2, -2, .5, -.5)),
              (4, (0, 1, -1, 2, -2, .5, 3)), (6, (0, 1, -1, 2, -2, .5, -.5, 3, -3))]
CANDIDATES_CONV1 = [(2, (0, 1, -1, 2, -2, .5, -.5, 3, -3)), (4, (0, 1, -1, 2, -2, .5, -.5, 4, -4, .25, -.25))]
CANDIDATES_2D = [(2, (0, 1, -1, 2, -2)), (3, (0, 1, -1, 2, -2, .5)), (4, (0, 1, -1, 2, -2, .5, -.5))]


def winograd_conv_rows(d: np.ndarray, w: np.ndarray, tile: int, points) -> np.ndarray:
    """d (Cin, H + K - 1, W + K - 1) float32 padded input, w (Cout, Cin, K, K) float64 -> (Cout, H, W')
    float32 without bias, W' = W rounded down to whole tiles."""
    taps = w.shape[3]
    at, g, bt = transform_matrices(tile, points, taps)
    n = tile + taps - 1
    H = d.shape[1] - taps + 1
    tiles = (d.shape[2] - taps + 1) // tile
    u = np.einsum("jk,oiyk->yjio", g, w).astype(np.float32)  # (ky, j, Cin, Cout)
    cols = np.arange(tiles)[:, None] * tile + np.arange(n)[None, :]  # (tiles, n) input columns
    v = np.einsum("jl,cytl->ytjc", bt.astype(np.float32), d[:, :, cols]).astype(np.float32)
    m = np.zeros((H, tiles, n, w.shape[0]), np.float32)
    for ky in range(taps):
        m += np.einsum("ytjc,jco->ytjo", v[ky:ky + H], u[ky]).astype(np.float32)
    y = np.einsum("ij,ytjo->oyti", at.astype(np.float32), m)
    return y.reshape(w.shape[0], H, tiles * tile)


def winograd_conv_2d(d: np.ndarray, w: np.ndarray, tile: int, points) -> np.ndarray:
    """F(tile x tile, 5 x 5): d (Cin, H + 4, W + 4) float32 padded input, w (Cout, Cin, 5, 5) float64
    -> (Cout, H', W') float32 without bias, H', W' rounded down to whole tiles. Weights transformed
    in float64 (G w G^T) then rounded; inputs transformed along rows, then along columns, products
    summed over Cin, output transform along columns, then rows, all in float32."""
    at, g, bt = (m.astype(np.float32) for m in transform_matrices(tile, points))
    n = tile + TAPS - 1
    ty, tx = (d.shape[1] - 4) // tile, (d.shape[2] - 4) // tile
    g64 = transform_matrices(tile, points)[1]
    u = np.einsum("jk,oiyk,ly->ljio", g64, w, g64).astype(np.float32)  # (8, 8, Cin, Cout)
    rows = np.arange(ty)[:, None] * tile + np.arange(n)[None, :]  # (ty, n)
    cols = np.arange(tx)[:, None] * tile + np.arange(n)[None, :]  # (tx, n)
    tiles = d[:, rows[:, :, None, None], cols[None, None, :, :]]  # (Cin, ty, n, tx, n)
    v = np.einsum("jl,cakbl->cakbj", bt, tiles).astype(np.float32)  # along rows
    v = np.einsum("ik,cakbj->abijc", bt, v).astype(np.float32)  # along columns: (ty, tx, 8, 8, Cin)
    m = np.einsum("abijc,ijco->abijo", v, u).astype(np.float32)
    y = np.einsum("qj,abijo->abiqo", at, m).astype(np.float32)  # (ty, tx, 8, tile, Cout)
    y = np.einsum("pi,abiqo->oapbq", at, y).astype(np.float32)  # (Cout, ty, tile, tx, tile)
    return y.reshape(w.shape[0], ty * tile, tx * tile)


def conv1_by_rows(up: torch.Tensor, weights) -> None:
    """conv1 (9x9, 1 -> 64) by Winograd along rows: its error against float64 next to the direct float32 one."""
    w1 = np.array(weights.conv1_weight, np.float64)
    truth = F.conv2d(up, torch.from_numpy(w1), padding=4)[0].numpy()
    direct = F.conv2d(up.float(), torch.from_numpy(w1).float(), padding=4)[0].numpy()
    print(f"conv1 output up to {np.abs(truth).max():.2f}; max abs error against float64:")
    print(f"  direct float32  {np.abs(direct - truth).max():.1e}")
    d = np.pad(up[0].numpy(), ((0, 0), (4, 4), (4, 4))).astype(np.float32)
    for tile, points in CANDIDATES_CONV1:
        y = winograd_conv_rows(d, w1, tile, points)
        err = np.abs(y - truth[:, :, :y.shape[2]]).max()
        print(f"  F({tile}, 9) on {points}: {err:.1e}   {(tile + 8) / (tile * 9):.2f}x the multiply-adds")


def main():
    weights = srcnn_np.load_weights(scale=2)
    img = torch.from_numpy(data.astronaut()[:, :, 1].astype(np.float32) / 255)[None, None]
    up = F.interpolate(img, scale_factor=2, mode="bicubic", align_corners=False)[..., :256, :256].double()
    w1, b1 = (torch.from_numpy(np.array(a)).double() for a in (weights.conv1_weight, weights.conv1_bias))
    w2 = torch.from_numpy(np.array(weights.conv2_weight)).double()
    c1 = F.relu(F.conv2d(up, w1, b1, padding=4))
    truth = F.conv2d(c1, w2, padding=2)[0].numpy()
    direct = F.conv2d(c1.float(), w2.float(), padding=2)[0].numpy()
    print(f"conv2 output up to {np.abs(truth).max():.2f}; max abs error against float64:")
    print(f"  direct float32  {np.abs(direct - truth).max():.1e}")
    d = np.pad(c1[0].numpy(), ((0, 0), (2, 2), (2, 2))).astype(np.float32)
    for tile, points in CANDIDATES:
        y = winograd_conv_rows(d, w2.numpy(), tile, points)
        err = np.abs(y - truth[:, :, :y.shape[2]]).max()
        work = (tile + TAPS - 1) / (tile * TAPS)
        print(f"  F({tile}, 5) on {points}: {err:.1e}   {work:.2f}x the multiply-adds")
    for tile, points in CANDIDATES_2D:
        y = winograd_conv_2d(d, w2.numpy(), tile, points)
        err = np.abs(y - truth[:, :y.shape[1], :y.shape[2]]).max()
        work = ((tile + TAPS - 1) / (tile * TAPS)) ** 2
        print(f"  F({tile}x{tile}, 5x5) on {points}: {err:.1e}   {work:.2f}x the multiply-adds")
    conv1_by_rows(up, weights)


if __name__ == "__main__":
    main()
