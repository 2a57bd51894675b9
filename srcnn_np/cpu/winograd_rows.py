"""The rows of a 5x5 conv by Winograd F(4x4, 5x5) (srcnn_np.cpu.winograd), as Numba-inlined pieces
that srcnn_np.cpu.kernels.conv_kernels compiles into its conv2 kernels for each register block.

Layouts as in srcnn_np.cpu.kernels: padded maps (H, W, C) float32 channels-last; transformed
weights (8, 8, Cin, Cout) float32 (winograd.transform_weights), computed once per weight set.
"""
from functools import lru_cache

import numpy as np
from numba.extending import register_jitable

from ..geometry import HALO
from . import winograd
from .simd import (block_channels, block_fma_broadcast, block_lanes, block_pixels, block_store, block_zero,
                   copy_vector, winograd_input_vector, winograd_output_vector)


@register_jitable
def fill_row(m, i, value):
    """m[i, :, :] = value for a (H, W, C) array (explicit loops: Numba compiles slice assignment slowly)."""
    for x in range(m.shape[1]):
        for c in range(m.shape[2]):
            m[i, x, c] = value


@register_jitable
def copy_row(m, i, j):
    """m[j, :, :] = m[i, :, :] for a (H, W, C) array."""
    for x in range(m.shape[1]):
        for c in range(m.shape[2]):
            m[j, x, c] = m[i, x, c]


@register_jitable
def winograd_input_row(block, src, sy, phase, tiles, v, slot, edge):
    """v[slot, t] = BT @ the 8 inputs of tile t on padded-map row sy, for t < tiles.

    src (>= sy + 1, Ws, Cin) float32 padded map (pad 2), Cin a multiple of the block's lanes; tile t
    holds output columns 4 t - phase .. 4 t - phase + 3, whose 5-tap rows read the padded columns
    4 t - phase .. + 7 (zero outside [0, Ws), like the map's border). v (>= slot + 1, >= tiles, 8, Cin) float32;
    edge (9, Cin) float32 scratch for the inputs of a tile that sticks out of src, edge[8] zero.
    """
    Ws = src.shape[1]
    Cin = src.shape[2]
    L = block_lanes(block)
    for t in range(tiles):
        x0 = 4 * t - phase
        d = ((slot * v.shape[1] + t) * 8) * Cin  # v[slot, t, 0, 0]
        if x0 >= 0 and x0 + 8 <= Ws:  # all but the first and last tile or two
            for c in range(0, Cin, L):
                winograd_input_vector(block, src, (sy * Ws + x0) * Cin + c, Cin, v, d + c, Cin)
        else:
            for k in range(8):
                for c in range(0, Cin, L):
                    if 0 <= x0 + k < Ws:
                        copy_vector(block, src, (sy * Ws + x0 + k) * Cin + c, edge, k * Cin + c)
                    else:
                        copy_vector(block, edge, 8 * Cin + c, edge, k * Cin + c)  # edge[8] is zero
            for c in range(0, Cin, L):
                winograd_input_vector(block, edge, c, Cin, v, d + c, Cin)


@register_jitable
def winograd_scratch(block, tiles, cin, cout):
    """Scratch of winograd_tile_row for rows of `tiles` tiles: (v, v2, m, m4, zero, edge) float32."""
    P = block_pixels(block)
    v = np.zeros((8, max(tiles, P), 8, cin), dtype=np.float32)
    v2 = np.empty((8, P, 8, cin), dtype=np.float32)
    m = np.empty((8, P, 8, cout), dtype=np.float32)
    m4 = np.empty((4, P, 8, cout), dtype=np.float32)
    return v, v2, m, m4, np.zeros(cout, dtype=np.float32), np.zeros((9, cin), dtype=np.float32)


@register_jitable
def winograd_tile_row(block, src, y0, phase, tiles, u, b, width, relu, lo, hi, dst, dy, dx,
                      v, v2, m, m4, zero, edge):
    """Output rows y0 .. y0 + 3 of a 5x5 conv (optionally + ReLU) by F(4x4, 5x5): a row of tiles.

    src (Hs, Ws, Cin) float32 padded map (pad 2), Cin a multiple of the block's lanes: the tiles
    read its rows y0 .. y0 + 7 (zero outside [0, Hs)); tile t holds output columns 4 t - phase ..
    + 3. u (8, 8, Cin, Cout) float32 transformed weights (winograd.transform_weights), Cout a
    multiple of the block's channels; b (Cout,). Writes dst[dy + y, dx + x, :] for the rows y in
    y0 .. y0 + 3 with lo <= y < hi and 0 <= x < width, nothing else. Scratch from winograd_scratch:
    v holds the 8 rows' row transforms; then each block of `pixels` tiles runs the column
    transform (v2), the 64 points' sums over Cin in the register block (m), the column output
    transform (m4), and the row output transform with bias (+ ReLU) into dst. The transforms run
    in loops of their own and load their constants where used (simd's opaque tables), so none
    stays in a register across the block's loop.
    """
    Hs = src.shape[0]
    Cin = src.shape[2]
    Cout = u.shape[3]
    P = block_pixels(block)
    L = block_lanes(block)
    T = v.shape[1]
    for r in range(8):
        if 0 <= y0 + r < Hs:
            winograd_input_row(block, src, y0 + r, phase, tiles, v, r, edge)
        else:
            for t in range(T):
                fill_row(v[r], t, 0.0)
    step_in, step_out = P * 8 * Cin, P * 8 * Cout  # v2's and m's point-row strides
    Wd = dst.shape[1]
    for t in range(0, tiles, P):
        t0 = min(t, max(tiles - P, 0))  # the last block ends at the last tile
        for q in range(0, step_in, L):  # column transform of tiles t0 .. t0 + P - 1
            winograd_input_vector(block, v, t0 * 8 * Cin + q, T * 8 * Cin, v2, q, step_in)
        for i in range(8):
            for j in range(8):
                s = (i * P * 8 + j) * Cin  # v2[i, 0, j, 0]
                for g in range(0, Cout, block_channels(block)):
                    acc = block_zero(block)
                    w0 = (i * 8 + j) * Cin * Cout + g  # u[i, j, 0, g]
                    for c in range(Cin):
                        acc = block_fma_broadcast(acc, v2, s + c, 8 * Cin, u, w0 + c * Cout)
                    block_store(acc, m, (i * P * 8 + j) * Cout + g, 8 * Cout, P, False)  # m[i, p, j, g:]
        for q in range(0, step_out, L):  # column output transform: 8 point rows -> 4 rows
            winograd_output_vector(block, m, q, step_out, zero, 0, m4, q, step_out, 0, 4, False)
        for o in range(4):
            if lo <= y0 + o < hi:
                for p in range(min(P, tiles)):  # row output transform + bias, columns inside [0, width)
                    x = 4 * (t0 + p) - phase
                    for c in range(0, Cout, L):
                        winograd_output_vector(block, m4, (o * P + p) * 8 * Cout + c, Cout, b, c,
                                               dst, ((dy + y0 + o) * Wd + dx + x) * Cout + c, Cout,
                                               max(-x, 0), min(width - x, 4), relu)


@lru_cache(maxsize=8)
def _winograd_weights(data: bytes, shape: tuple) -> np.ndarray:
    return winograd.transform_weights(np.frombuffer(data, np.float32).reshape(shape))


def winograd_weights(w: np.ndarray) -> np.ndarray:
    """(5, 5, Cin, Cout) float32 -> (8, 8, Cin, Cout) float32, cached for the last few weight sets."""
    return _winograd_weights(np.ascontiguousarray(w, np.float32).tobytes(), w.shape)


# A Winograd output's rounding depends on every input of its tile, up to winograd.TILE - 1 rows and
# columns beyond its 5x5 taps (in exact arithmetic their terms cancel, in float32 they leave a
# last-bit trace).
# So a window of the image computes the whole image's bits in the pixels at least WINDOW_HALO from
# its edges inside the image (tiles anchored to the image, x_origin), not HALO: model.py tiles so.
WINDOW_HALO = HALO + winograd.TILE - 1
