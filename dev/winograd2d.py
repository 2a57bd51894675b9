"""Experiment: conv2 by 2D Winograd F(4x4, 5x5) from the shipped kernels' pieces, timed against
the shipped F(4, 5) along rows (kernels.conv_relu_into).

Run: python dev/winograd2d.py [SIDE]      (default 1024: conv2 of an x2 512x512 input)

A prototype, not the shipped kernel: tile rows anchored to row 0 of the map only, no fused conv3,
and each tile row transforms its 8 input rows along x afresh (the 4 rows two tile rows share are
transformed twice). Per tile row of 4 output rows: the 8 padded input rows' row transforms
(kernels.winograd_input_row), their column transform (the winograd_input_vector intrinsic over
the 8 slots), 8 x 8 points' GEMMs over the input channels (block_fma_broadcast), the column
output transform (winograd_output_vector with a zero bias) and the shipped row output transform
with bias and ReLU. Weights: U2 = G (y) applied to the shipped row-transformed weights, in float64.

Result (2-core AMD EPYC Zen 3 VM, AVX2, 2 threads, side 1024, median of 5, alternated): the
prototype took 0.54x the shipped F(4, 5) kernel's time (a first version that ran every stage over the
whole row, with row-sized buffers, took 0.92x: the transformed rows fell out of L2).
"""
import sys
import time

import numba
import numpy as np
from numba import njit

import srcnn_np
from srcnn_np.config import JIT_OPTIONS
from srcnn_np.cpu import isa, kernels, threads, winograd
from srcnn_np.cpu.simd import (block_channels, block_fma_broadcast, block_lanes, block_pixels, block_store,
                               block_zero, winograd_input_vector, winograd_output_vector)
from srcnn_np.model import KernelWeights

BLOCK = isa.BLOCK


def transform_weights_2d(w: np.ndarray) -> np.ndarray:
    """(5, 5, Cin, Cout) -> (8, 8, Cin, Cout) float32: G w G^T per channel pair, in float64."""
    g = winograd.transform_matrices()[1]
    return np.ascontiguousarray(np.einsum("iy,jx,yxco->ijco", g, g, w.astype(np.float64)), np.float32)


@njit(**JIT_OPTIONS)
def winograd2d_rows(src, u2, b, width, relu, dst, dst_pad, k0, k1):
    """Tile rows k0 .. k1 - 1 (output rows 4k .. 4k + 3) of a 5x5 conv (+ ReLU). After the row
    transforms of the tile row's 8 input rows, each block of `pixels` tiles runs its column
    transform, GEMMs and output transforms on small buffers that stay in L1/L2."""
    Hs = src.shape[0]
    H = Hs - 4
    Cin = src.shape[2]
    Cout = u2.shape[3]
    P = block_pixels(BLOCK)
    L = block_lanes(BLOCK)
    tiles = (width + 3) // 4
    T = max(tiles, P)
    v = np.zeros((8, T, 8, Cin), dtype=np.float32)  # row-transformed input rows
    v2 = np.zeros((8, P, 8, Cin), dtype=np.float32)  # a block's column-transformed tiles
    m = np.zeros((8, P, 8, Cout), dtype=np.float32)  # the block's 64 points, summed over Cin
    m4 = np.zeros((4, P, 8, Cout), dtype=np.float32)  # after the column output transform
    zero_bias = np.zeros(Cout, dtype=np.float32)
    edge = np.zeros((9, Cin), dtype=np.float32)
    vslot = T * 8 * Cin
    Wd = dst.shape[1]
    for k in range(k0, k1):
        y0 = 4 * k
        for r in range(8):
            if y0 + r < Hs:
                kernels.winograd_input_row(BLOCK, src, y0 + r, 0, tiles, v, r, edge)
            else:
                v[r] = 0.0
        for t in range(0, tiles, P):
            t0 = min(t, max(tiles - P, 0))
            for q in range(0, P * 8 * Cin, L):  # column transform of the block's tiles
                winograd_input_vector(BLOCK, v, t0 * 8 * Cin + q, vslot, v2, q, P * 8 * Cin)
            for i in range(8):
                for j in range(8):
                    s = (i * P * 8 + j) * Cin
                    for g in range(0, Cout, block_channels(BLOCK)):
                        acc = block_zero(BLOCK)
                        qq = (i * 8 + j) * Cin * Cout + g
                        for c in range(Cin):
                            acc = block_fma_broadcast(acc, v2, s + c, 8 * Cin, u2, qq + c * Cout)
                        block_store(acc, m, (i * P * 8 + j) * Cout + g, 8 * Cout, P, False)
            for q in range(0, P * 8 * Cout, L):  # column output transform: 8 rows of points -> 4
                winograd_output_vector(BLOCK, m, q, P * 8 * Cout, zero_bias, 0, m4, q, P * 8 * Cout, 0, 4, False)
            for o in range(min(4, H - y0)):
                for p in range(min(P, tiles)):  # row output transform with bias (+ ReLU)
                    x = 4 * (t0 + p)
                    hi = min(width - x, 4)
                    for c in range(0, Cout, L):
                        winograd_output_vector(BLOCK, m4, (o * P + p) * 8 * Cout + c, Cout, b, c,
                                               dst, ((dst_pad + y0 + o) * Wd + dst_pad + x) * Cout + c, Cout,
                                               0, hi, relu)


def main(side: int) -> None:
    kw = KernelWeights.from_weights(srcnn_np.load_weights(None, scale=2))
    src = kernels.padded_map(side, side, 64, 2)
    src[2:2 + side, 2:2 + side] = np.random.default_rng(0).random((side, side, 64), dtype=np.float32)
    u2 = transform_weights_2d(kw.w2)
    rows_1d = kernels.padded_map(side, side, 32, 2)
    rows_2d = kernels.padded_map(side, side, 32, 2)

    def run_1d():
        kernels.conv_relu_into(src, kw.w2, kw.b2, side, True, rows_1d, 2)

    def run_2d():
        threads.run_bands(winograd2d_rows, (side + 3) // 4, (src, u2, kw.b2, side, True, rows_2d, 2),
                          bands_per_thread=4)

    run_1d()
    run_2d()
    print(f"variant {BLOCK.name}, side {side}, threads {numba.get_num_threads()}; 2D against 1D: "
          f"max |diff| {np.abs(rows_2d - rows_1d).max():.2e} (outputs up to {rows_1d.max():.2f})")
    times = {"F(4, 5) rows (shipped)": [], "F(4x4, 5x5) prototype": []}
    for _ in range(5):
        for name, fn in zip(times, (run_1d, run_2d)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    base = np.median(times["F(4, 5) rows (shipped)"])
    for name, ts in times.items():
        print(f"{name:24} {np.median(ts):.4f} s  {np.median(ts) / base:.2f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1024)
