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
from .simd import (aligned_copy, block_channels, block_fma_broadcast, block_lanes, block_pixels, block_store,
                   block_zero, copy_vector, winograd_input_vector, winograd_output_vector)


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


# Floats added to each row of the scratch arrays, so that rows lie a cache line off from any 4 KB
# multiple: the transforms read and write 8 rows at once, and rows a multiple of 4 KB apart share
# one L1 cache set (8 ways), which evicted them mid-transform (conv2 took 1.3-1.5x the time).
ROW_PAD = 16


@register_jitable
def scratch_layout(pixels, cin, cout):
    """Where winograd_tile_row's arrays lie in its flat float32 scratch (winograd_scratch): the
    row strides of v and v2 (rows of pixels * 8 * cin + ROW_PAD floats) and of m and m4 (of
    cout), the offsets of v2, m, m4, zero and edge, then the size; v starts at 0:
        v    (8, pixels, 8, cin)   the row transforms of a block's 8 input rows
        v2   (8, pixels, 8, cin)   their column transforms: the block's 64 transformed points
        m    (8, pixels, 8, cout)  the 64 points' sums over the input channels
        m4   (4, pixels, 8, cout)  after the column output transform
        zero (cout,)               zeros (a bias of 0, and what zero fills copy)
        edge (9, cin)              the inputs of a tile that sticks out of the map; edge[8] zero
    """
    step_in = pixels * 8 * cin + ROW_PAD
    step_out = pixels * 8 * cout + ROW_PAD
    v2 = 8 * step_in
    m = v2 + 8 * step_in
    m4 = m + 8 * step_out
    zero = m4 + 4 * step_out
    edge = zero + cout
    return step_in, step_out, v2, m, m4, zero, edge, edge + 9 * cin


@register_jitable
def winograd_scratch(block, cin, cout):
    """winograd_tile_row's scratch: (size,) float32 zeros, laid out by scratch_layout. One flat
    buffer: Numba compiles each rank of np.zeros apart (about 0.1 s of the first run each)."""
    return np.zeros(scratch_layout(block_pixels(block), cin, cout)[-1], dtype=np.float32)


@register_jitable
def winograd_input_row(block, src, sy, phase, t0, s, d0, edge):
    """v[slot, p] = BT @ the 8 inputs of tile t0 + p on padded-map row sy, for p < pixels.

    src (>= sy + 1, Ws, Cin) float32 padded map (pad 2), Cin a multiple of the block's lanes; tile t
    holds output columns 4 t - phase .. 4 t - phase + 3, whose 5-tap rows read the padded columns
    4 t - phase .. + 7 (zero outside [0, Ws), like the map's border). s: the flat scratch, v[slot]
    at offset d0, edge at offset edge (scratch_layout).
    """
    Ws = src.shape[1]
    Cin = src.shape[2]
    L = block_lanes(block)
    for p in range(block_pixels(block)):
        x0 = 4 * (t0 + p) - phase
        d = d0 + p * 8 * Cin  # v[slot, p, 0, 0]
        if x0 >= 0 and x0 + 8 <= Ws:  # all but the first and last tile or two
            for c in range(0, Cin, L):
                winograd_input_vector(block, src, (sy * Ws + x0) * Cin + c, Cin, s, d + c, Cin)
        else:
            for k in range(8):
                for c in range(0, Cin, L):
                    if 0 <= x0 + k < Ws:
                        copy_vector(block, src, (sy * Ws + x0 + k) * Cin + c, s, edge + k * Cin + c)
                    else:
                        copy_vector(block, s, edge + 8 * Cin + c, s, edge + k * Cin + c)  # edge[8] is zero
            for c in range(0, Cin, L):
                winograd_input_vector(block, s, edge + c, Cin, s, d + c, Cin)


@register_jitable
def winograd_tile_row(block, src, y0, phase, tiles, u, b, width, relu, lo, hi, dst, dy, dx, s):
    """Output rows y0 .. y0 + 3 of a 5x5 conv (optionally + ReLU) by F(4x4, 5x5): a row of tiles.

    src (Hs, Ws, Cin) float32 padded map (pad 2), Cin a multiple of the block's lanes: the tiles
    read its rows y0 .. y0 + 7 (zero outside [0, Hs)); tile t holds output columns 4 t - phase ..
    + 3. u (8, 8, Cin, Cout) float32 transformed weights (winograd.transform_weights), Cout a
    multiple of the block's channels; b (Cout,). Writes dst[dy + y, dx + x, :] for the rows y in
    y0 .. y0 + 3 with lo <= y < hi and 0 <= x < width, nothing else. s: winograd_scratch's buffer,
    whose arrays (scratch_layout) are read at flat offsets. Each block of `pixels` tiles runs the
    row transforms of its 8 input rows (v), the column transform (v2), the 64 points' sums over
    Cin in the register block (m), the column output transform (m4), and the row output transform
    with the bias (+ ReLU) into dst: about 300 KB of scratch, which stays in L2. The transforms run
    in loops of their own and load their constants where used (simd's opaque tables), so none
    stays in a register across the block's loop.
    """
    Hs = src.shape[0]
    Cin = src.shape[2]
    Cout = u.shape[3]
    P = block_pixels(block)
    L = block_lanes(block)
    step_in, step_out, V2, M, M4, ZERO, EDGE, _ = scratch_layout(P, Cin, Cout)
    Wd = dst.shape[1]
    for t in range(0, tiles, P):
        t0 = min(t, max(tiles - P, 0))  # the last block ends at the last tile
        for r in range(8):  # row transforms of tiles t0 .. t0 + P - 1 (past the last tile: unused)
            if 0 <= y0 + r < Hs:
                winograd_input_row(block, src, y0 + r, phase, t0, s, r * step_in, EDGE)
            else:
                for i in range(r * step_in, r * step_in + P * 8 * Cin, L):  # v[r] = 0, a vector at a time
                    copy_vector(block, s, ZERO, s, i)
        for q in range(0, P * 8 * Cin, L):  # column transform
            winograd_input_vector(block, s, q, step_in, s, V2 + q, step_in)
        for i in range(8):
            for j in range(8):
                v2 = V2 + i * step_in + j * Cin  # v2[i, 0, j, 0]
                for g in range(0, Cout, block_channels(block)):
                    acc = block_zero(block)
                    w0 = (i * 8 + j) * Cin * Cout + g  # u[i, j, 0, g]
                    for c in range(Cin):
                        acc = block_fma_broadcast(acc, s, v2 + c, 8 * Cin, u, w0 + c * Cout)
                    block_store(acc, s, M + i * step_out + j * Cout + g, 8 * Cout, P, False)  # m[i, p, j, g:]
        for q in range(0, P * 8 * Cout, L):  # column output transform: 8 point rows -> 4 rows
            winograd_output_vector(block, s, M + q, step_out, s, ZERO, s, M4 + q, step_out, 0, 4, False)
        for o in range(4):
            if lo <= y0 + o < hi:
                for p in range(min(P, tiles)):  # row output transform + bias, columns inside [0, width)
                    x = 4 * (t0 + p) - phase
                    for c in range(0, Cout, L):
                        winograd_output_vector(block, s, M4 + o * step_out + p * 8 * Cout + c, Cout, b, c,
                                               dst, ((dy + y0 + o) * Wd + dx + x) * Cout + c, Cout,
                                               max(-x, 0), min(width - x, 4), relu)


@lru_cache(maxsize=8)
def _winograd_weights(data: bytes, shape: tuple) -> np.ndarray:
    return aligned_copy(winograd.transform_weights(np.frombuffer(data, np.float32).reshape(shape)))


def winograd_weights(w: np.ndarray) -> np.ndarray:
    """(5, 5, Cin, Cout) float32 -> (8, 8, Cin, Cout) float32, cached for the last few weight sets."""
    return _winograd_weights(np.ascontiguousarray(w, np.float32).tobytes(), w.shape)


# A Winograd output's rounding depends on every input of its tile, up to winograd.TILE - 1 rows and
# columns beyond its 5x5 taps (in exact arithmetic their terms cancel, in float32 they leave a
# last-bit trace).
# So a window of the image computes the whole image's bits in the pixels at least WINDOW_HALO from
# its edges inside the image (tiles anchored to the image, x_origin), not HALO: model.py tiles so.
WINDOW_HALO = HALO + winograd.TILE - 1
