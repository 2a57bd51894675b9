"""Numba CPU kernels: bicubic upsampling and the SRCNN convolutions.

Layouts: images are (H, W) float32; feature maps are channels-last (H, W, C) float32;
conv weights are (KH, KW, Cin, Cout) float32 (KernelWeights.from_weights converts torch's OIHW).

The convolutions read a *padded map* and write into the interior of the next one, so no layer
makes a padded copy of its input:

    padded map of an (h, w, C) feature map read by a K x K conv (p = K // 2):
        shape (h + 2p, ceil8(w) + 2p, C) float32, C-contiguous, zero everywhere except
        [p:p + h, p:p + w], which holds the map.

The zero border is the conv's zero padding (torch's Conv2d(padding=K // 2)); the extra columns up to
ceil8(w) let every kernel read whole register blocks of up to 8 output pixels. A kernel only ever
writes the interior of its output map, so buffers made with `padded_map` keep their zero border.

The conv kernels keep a register block of output pixels x channels in vector registers
(srcnn_np.cpu.simd); its shape is the variant isa.BLOCK picked for this CPU (AVX-512, AVX2,
4 lanes). One kernel source serves every variant: `conv_kernels(shape)` compiles it for a shape.
conv1 (9x9, one input channel) and conv3 (one output channel) run directly; conv2 (5x5, 64 -> 32,
90% of the direct model's work) runs by 2D Winograd F(4x4, 5x5) (srcnn_np.cpu.winograd; its rows
in srcnn_np.cpu.winograd_rows), whose register block holds tiles x channels of one of the 64
transformed points, at 0.16x the multiply-adds.
A row is covered by blocks of `pixels` outputs; when the row is not a whole number of them, the
last block is moved left to end at the row's end (it recomputes a few outputs, identically),
so only a row narrower than one block writes part of a block.

Rows are shared out among threads (srcnn_np.cpu.threads) from Python: the kernels release the
GIL, and leaving Numba's parallel=True out keeps the first-run compile to a few seconds.
"""
from functools import lru_cache
from types import SimpleNamespace

import numpy as np
from numba import njit
from numba.extending import register_jitable

from .. import bicubic_taps
from ..config import JIT_OPTIONS
from . import isa, notice, threads, winograd  # noqa: F401 (notice: the first-compile line on stderr)
from .simd import (aligned_empty, block_bias, block_channels, block_fma_broadcast, block_fma_elementwise, block_pixels,
                   block_store, block_sum_store, block_zero)
from .winograd_rows import WINDOW_HALO, copy_row, fill_row, winograd_scratch, winograd_tile_row, winograd_weights  # noqa: F401 (WINDOW_HALO: model tiles by it)

PIXEL_BLOCK = isa.MAX_PIXELS  # padded maps have whole multiples of this many columns


def ceil_block(n: int) -> int:
    """n rounded up to a whole number of PIXEL_BLOCKs."""
    return -(-n // PIXEL_BLOCK) * PIXEL_BLOCK


def padded_map(h: int, w: int, channels: int, pad: int, storage=None) -> np.ndarray:
    """Padded map (h + 2 pad, ceil8(w) + 2 pad, channels) float32 for an (h, w, channels) map.

    storage None: a new zeroed array. Otherwise a flat float32 array, at least as large, that the
    map is laid into (reusing memory from window to window): its border is zeroed, its interior
    [pad:pad + h, pad:pad + w] is left as it was, for the kernel that fills the map to overwrite.
    Both start on a cache line when storage does (simd.aligned_empty).
    """
    shape = (h + 2 * pad, ceil_block(w) + 2 * pad, channels)
    if storage is None:
        m = aligned_empty(shape)
        m[...] = 0
        return m
    m = storage[:shape[0] * shape[1] * shape[2]].reshape(shape)
    m[:pad] = 0
    m[pad + h:] = 0
    m[pad:pad + h, :pad] = 0
    m[pad:pad + h, pad + w:] = 0
    return m


# ---------------------------------------------------------------------------------------------
# Bicubic upsampling


@njit(**JIT_OPTIONS)
def bicubic_rows(img, xi, xw, x0, w, r0, rows, a, b):
    """Horizontal pass of rows [a, b): rows[r, o] = the 4 taps of output column x0 + o on img row r0 + r.

    img (H, W) float32; xi, xw (sW, 4) taps (bicubic_taps.cubic_taps); rows (>= b, >= w) float32.
    """
    for r in range(a, b):
        for o in range(w):
            acc = np.float32(0.0)
            for k in range(4):
                acc += xw[x0 + o, k] * img[r0 + r, xi[x0 + o, k]]
            rows[r, o] = acc


@njit(**JIT_OPTIONS)
def bicubic_columns(rows, yi, yw, y0, r0, w, dst, pad, a, b):
    """Vertical pass of output rows [a, b): dst[pad + o, pad + x] from the 4 taps of row y0 + o in
    `rows` (the horizontal pass of source rows r0, r0 + 1, ...). yi, yw (sH, 4) taps."""
    for o in range(a, b):
        for x in range(w):
            acc = np.float32(0.0)
            for k in range(4):
                acc += yw[y0 + o, k] * rows[yi[y0 + o, k] - r0, x]
            dst[pad + o, pad + x] = acc


def bicubic_window(img, scale, y0, x0, h, w, dst, pad):
    """The (h, w) window [y0:y0 + h, x0:x0 + w] of the bicubic upsampling of img, into dst.

    img (H, W) float32 -> dst[pad:pad + h, pad:pad + w] of dst (>= h + 2 pad, >= w + 2 pad) float32;
    nothing else of dst is written. Every output pixel is computed exactly as in the whole
    (scale H, scale W) image (borders clamp to the image, not to the window), so windows tile
    the upsampled image bit for bit. Horizontal pass first, as torch does; each pass's rows are
    shared out among the threads.
    """
    H, W = img.shape
    if (y0 < 0 or x0 < 0 or h < 1 or w < 1 or y0 + h > H * scale or x0 + w > W * scale
            or dst.shape[0] < h + 2 * pad or dst.shape[1] < w + 2 * pad):
        raise ValueError("bicubic_window: window outside the image or the destination")
    xi, xw = bicubic_taps.cubic_taps(W, scale)
    yi, yw = bicubic_taps.cubic_taps(H, scale)
    r0 = yi[y0, 0]  # source rows the window needs; tap indices grow along the axis
    r1 = yi[y0 + h - 1, 3] + 1
    rows = np.empty((r1 - r0, w), dtype=np.float32)
    threads.run_bands(bicubic_rows, r1 - r0, (img, xi, xw, x0, w, r0, rows))
    threads.run_bands(bicubic_columns, h, (rows, yi, yw, y0, r0, w, dst, pad))


def bicubic_upsample(img, scale):
    """(H, W) float32 -> (scale*H, scale*W) float32, equal to torch bicubic (align_corners=False)."""
    img = np.require(img, np.float32, ["C_CONTIGUOUS", "WRITEABLE"])  # one compiled version
    H, W = img.shape
    out = np.empty((H * scale, W * scale), dtype=np.float32)
    bicubic_window(img, scale, 0, 0, H * scale, W * scale, out, 0)
    return out


# ---------------------------------------------------------------------------------------------
# Convolutions on padded maps: row kernels, compiled into the band kernels of each variant


@register_jitable
def conv_relu_row(block, src, w, b, sy, width, relu, dst, dy, dx):
    """One output row of a conv layer (optionally + ReLU): dst[dy, dx + x, :] for x < width.

    src (>= sy + K, >= ceil8(width) + K - 1, Cin) float32 padded map, the row reads src rows
    sy .. sy + K - 1; w (K, K, Cin, Cout) float32 with Cout a multiple of the block's channels;
    b (Cout,) float32; dst (>= dy + 1, >= dx + width, Cout) float32. Nothing else of dst is written.
    Register block: `pixels` outputs x `channels` output channels; each pixel's input value is
    broadcast, the weights of one (ky, kx, c) are `vectors` vector loads. The kx and c loops run
    as one (a kernel row's inputs and weights are each contiguous): for conv1's single channel
    that halves the loop overhead around each tap's FMAs (dev/conv1_blocking.py: 0.6-0.77x the time).
    """
    K = w.shape[0]
    Cin = w.shape[2]
    Cout = w.shape[3]
    Ws = src.shape[1]
    Wd = dst.shape[1]
    P = block_pixels(block)
    for g in range(0, Cout, block_channels(block)):
        for x in range(0, width, P):
            x0 = min(x, max(width - P, 0))  # the last block ends at the row's end
            acc = block_bias(block, b, g)
            for ky in range(K):
                s = ((sy + ky) * Ws + x0) * Cin  # src[sy + ky, x0, 0]
                t = ky * K * Cin * Cout + g  # w[ky, 0, 0, g]
                for j in range(K * Cin):  # j = kx * Cin + c: both offsets are linear in it
                    acc = block_fma_broadcast(acc, src, s + j, Cin, w, t + j * Cout)
            block_store(acc, dst, (dy * Wd + dx + x0) * Cout + g, Cout, min(P, width - x0), relu)


@register_jitable
def single_out_row(block, src, w, b, sy, width, dst, dy):
    """One output row of a conv with one output channel, no ReLU: dst[dy, x] for x < width.

    src (>= sy + K, >= ceil8(width) + K - 1, Cin) float32 padded map, Cin a multiple of the block's
    channels, the row reads src rows sy .. sy + K - 1; w (K, K, Cin, 1) float32; b (1,) float32;
    dst (>= dy + 1, >= width) float32. Vectorised over input channels: `pixels` outputs x `vectors`
    vectors of partial sums, summed across lanes at the end.
    """
    K = w.shape[0]
    Cin = w.shape[2]
    Ws = src.shape[1]
    Wd = dst.shape[1]
    P = block_pixels(block)
    for x in range(0, width, P):
        x0 = min(x, max(width - P, 0))
        acc = block_zero(block)
        for ky in range(K):
            s = ((sy + ky) * Ws + x0) * Cin  # src[sy + ky, x0, 0]
            t = ky * K * Cin  # w[ky, 0, 0, 0]
            for j in range(0, K * Cin, block_channels(block)):  # j = kx * Cin + c
                acc = block_fma_elementwise(acc, src, s + j, Cin, w, t + j)
        block_sum_store(acc, dst, dy * Wd + x0, min(P, width - x0), b[0])


FUSED_CHUNK_ROWS = 16  # conv2 rows a thread computes before running conv3 over them


@lru_cache(maxsize=None)
def conv_kernels(shape: isa.BlockShape) -> SimpleNamespace:
    """The compiled band kernels for one register block shape (compiled on first call, cached).

    Each takes a band of output rows [r0, r1) so that threads can share the rows out; `shape`
    reaches the row kernels as a closure constant, which Numba's cache keys on.
    """
    BLOCK = shape

    @njit(**JIT_OPTIONS)
    def conv_relu_rows(src, w, b, width, relu, dst, dst_pad, r0, r1):
        """Rows r0 .. r1 - 1 of conv_relu_into, direct (any K)."""
        for y in range(r0, r1):
            conv_relu_row(BLOCK, src, w, b, y, width, relu, dst, dst_pad + y, dst_pad)

    @njit(**JIT_OPTIONS)
    def winograd_rows(src, u, b, width, phase, row_phase, relu, dst, dst_pad, k0, k1):
        """Tile rows k0 .. k1 - 1 of conv_relu_into for a 5x5 conv by Winograd F(4x4, 5x5): output
        rows 4 k - row_phase .. + 3 inside the map, columns in tiles from 4 t - phase; u from
        winograd.transform_weights."""
        tiles = (width + phase + 3) // 4
        scratch = winograd_scratch(BLOCK, src.shape[2], u.shape[3])
        for k in range(k0, k1):
            winograd_tile_row(BLOCK, src, 4 * k - row_phase, phase, tiles, u, b, width, relu, 0, src.shape[0] - 4,
                              dst, dst_pad, dst_pad, scratch)

    @njit(**JIT_OPTIONS)
    def single_out_rows(src, w, b, width, dst, r0, r1):
        """Rows r0 .. r1 - 1 of conv_single_out_into."""
        for y in range(r0, r1):
            single_out_row(BLOCK, src, w, b, y, width, dst, y)

    @njit(**JIT_OPTIONS)
    def fused_rows(src, u, b, w_last, b_last, width, phase, row_phase, dst, r0, r1):
        """Rows r0 .. r1 - 1 of conv_relu_then_single_out_into: the middle rows (5x5 conv by
        Winograd, u, phase and row_phase as in winograd_rows) about FUSED_CHUNK_ROWS at a time into
        a small zero-bordered buffer that stays in cache, then the last layer's rows. Chunks after
        the first start on a tile row, so each middle row is computed once per band."""
        KL = w_last.shape[0]
        p = KL // 2
        H = src.shape[0] - 4
        tiles = (width + phase + 3) // 4
        scratch = winograd_scratch(BLOCK, src.shape[2], u.shape[3])
        chunk = FUSED_CHUNK_ROWS
        # mid[i] holds middle row c0 - p + i (zero outside the image), zero-bordered for the last layer
        mid = np.zeros((chunk + 2 * p, (width + 7) // 8 * 8 + 2 * p, u.shape[3]), dtype=np.float32)
        c0 = r0
        c1 = min(r0 + chunk - (r0 + p + row_phase) % 4, r1)  # later chunks' new rows start on a tile row
        lo = r0 - p  # the first middle row this chunk computes (later chunks keep 2p from the last)
        while c0 < r1:
            hi = c1 + p
            for y in range(lo, hi):
                if y < 0 or y >= H:
                    fill_row(mid, y - c0 + p, 0.0)
            first, last = max(lo, 0), min(hi, H)
            for k in range((first + row_phase) // 4, (last - 1 + row_phase) // 4 + 1):
                winograd_tile_row(BLOCK, src, 4 * k - row_phase, phase, tiles, u, b, width, True, first, last,
                                  mid, p - c0, p, scratch)
            for y in range(c0, c1):
                single_out_row(BLOCK, mid, w_last, b_last, y - c0, width, dst, y)
            for i in range(2 * p):  # keep the last 2p middle rows for the next chunk
                copy_row(mid, c1 - c0 + i, i)
            lo = hi
            c0, c1 = c1, min(c1 + chunk, r1)

    return SimpleNamespace(shape=shape, conv_relu_rows=conv_relu_rows, winograd_rows=winograd_rows,
                           single_out_rows=single_out_rows, fused_rows=fused_rows)


# This process's variant, as module attributes (tools/kernel_asm.py and Numba's tooling find them here).
_native = conv_kernels(isa.BLOCK)
conv_relu_rows, winograd_rows = _native.conv_relu_rows, _native.winograd_rows
single_out_rows, fused_rows = _native.single_out_rows, _native.fused_rows


# ---------------------------------------------------------------------------------------------
# The conv layers: shape checks, then bands of rows on threads


def _kernels(shape):
    return conv_kernels(isa.BLOCK if shape is None else shape)


def _check(ok: bool, name: str):
    if not ok:
        raise ValueError(f"{name}: inconsistent shapes")


def _check_conv(name, src, w, width, channels_out, block):
    """The checks every conv kernel needs: src is a padded map wide enough for `width` outputs."""
    K = w.shape[0]
    _check(w.shape[1] == K and src.shape[2] == w.shape[2] and src.shape[0] >= K
           and src.shape[1] >= ceil_block(width) + K - 1 and channels_out % block.channels == 0
           and width >= 1 and all(a.dtype == np.float32 and a.flags.c_contiguous for a in (src, w)), name)


def conv_relu_into(src, w, b, width, relu, dst, dst_pad, block=None, x_origin=0, y_origin=0):
    """One conv layer (optionally + ReLU) from a padded map into the interior of another.

    src (H + K - 1, >= ceil8(width) + K - 1, Cin) float32 padded map of an (H, width, Cin) map;
    w (K, K, Cin, Cout) float32 with Cout a multiple of the block's channels; b (Cout,) float32;
    dst (H + 2 dst_pad, >= width + 2 dst_pad, Cout) float32: dst[dst_pad + y, dst_pad + x] is set
    for y < H, x < width, nothing else is written. block: an isa.BlockShape (None: isa.BLOCK).
    5x5 convs whose Cin is a multiple of the block's lanes run by Winograd F(4x4, 5x5), in tiles
    anchored to image row and column 0 (y_origin, x_origin: the image row and column of the map's
    first interior pixel), others directly.
    """
    k = _kernels(block)
    H = src.shape[0] - w.shape[0] + 1
    _check_conv("conv_relu_into", src, w, width, w.shape[3], k.shape)
    _check(dst.shape[2] == w.shape[3] and b.shape[0] == w.shape[3] and dst.shape[0] >= H + 2 * dst_pad
           and dst.shape[1] >= width + 2 * dst_pad, "conv_relu_into")
    if w.shape[:2] == (winograd.TAPS, winograd.TAPS) and src.shape[2] % k.shape.lanes == 0:
        row_phase = y_origin % winograd.TILE
        args = (src, winograd_weights(w), b, width, x_origin % winograd.TILE, row_phase, bool(relu), dst, dst_pad)
        threads.run_bands(k.winograd_rows, (H + row_phase + winograd.TILE - 1) // winograd.TILE, args,
                          bands_per_thread=4)
    else:
        threads.run_bands(k.conv_relu_rows, H, (src, w, b, width, bool(relu), dst, dst_pad), bands_per_thread=4)


def conv_single_out_into(src, w, b, width, dst, block=None):
    """The last layer alone: a conv with one output channel, no ReLU.

    src (H + K - 1, >= ceil8(width) + K - 1, Cin) float32 padded map, Cin a multiple of the block's
    channels; w (K, K, Cin, 1) float32; b (1,) float32; dst (>= H, >= width) float32 gets the
    (H, width) result.
    """
    k = _kernels(block)
    H = src.shape[0] - w.shape[0] + 1
    _check_conv("conv_single_out_into", src, w, width, w.shape[2], k.shape)
    _check(w.shape[3] == 1 and dst.shape[0] >= H and dst.shape[1] >= width, "conv_single_out_into")
    threads.run_bands(k.single_out_rows, H, (src, w, b, width, dst), bands_per_thread=4)


def conv_relu_then_single_out_into(src, w, b, w_last, b_last, width, dst, bands=None, block=None, x_origin=0,
                                   y_origin=0):
    """Two layers fused: a 5x5 conv + ReLU (w, b), then the one-output conv (w_last, b_last).

    src (H + 4, >= ceil8(width) + 4, Cin) float32 padded map; w (5, 5, Cin, Cmid),
    w_last (KL, KL, Cmid, 1); dst (>= H, >= width) float32 gets the (H, width) result. Equals
    conv_relu_into followed by conv_single_out_into, without their (H, width, Cmid) middle map:
    the rows are cut into `bands` bands (None: one per thread), each computed in small chunks
    (fused_rows); the KL - 1 middle rows at each band edge (and the rest of their tile rows) are
    computed by both neighbours. x_origin, y_origin: as in conv_relu_into.
    """
    k = _kernels(block)
    H = src.shape[0] - w.shape[0] + 1
    Cmid = w.shape[3]
    _check_conv("conv_relu_then_single_out_into", src, w, width, Cmid, k.shape)
    _check(w.shape[:2] == (winograd.TAPS, winograd.TAPS) and src.shape[2] % k.shape.lanes == 0 and b.shape[0] == Cmid
           and w_last.shape[1] == w_last.shape[0] and w_last.shape[2] == Cmid
           and w_last.shape[3] == 1 and dst.shape[0] >= H and dst.shape[1] >= width,
           "conv_relu_then_single_out_into")
    args = (src, winograd_weights(w), b, w_last, b_last, width, x_origin % winograd.TILE, y_origin % winograd.TILE, dst)
    threads.run_bands(k.fused_rows, H, args, bands=bands)
