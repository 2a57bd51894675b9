"""numba.cuda kernels for one tile of the SRCNN forward pass (imported lazily by srcnn_np.gpu.runner).

Importing this module imports numba.cuda: NUMBA_ENABLE_CUDASIM must be set before that, and
only srcnn_np.gpu.runner imports it, after checking that numba.cuda can be imported.

Every kernel is `cuda.jit(cache=True)`: compiled once per machine and kept on disk next to the
CPU kernels' cache. Their sizes are module constants here (numba freezes globals into the
compiled code, and a change to this file invalidates the cache; the layer sizes come from
srcnn_np.layers, whose changes do not: see there), not closures: a closure per size cannot be cached. Block shapes are not compiled in: blockDim comes from the launch and the
shared memory is dynamic (its bytes from `shared_bytes`), so a different THREADS_PER_BLOCK in
the runner needs no recompile.

Device layouts: feature maps are channels-first (C, H, W) float32, so neighbouring threads read
and write neighbouring addresses. Conv weights are flat (G, Cin, K*K, CO) float32: G = Cout / CO
groups of CO output channels, tap t = dy*K + dx (see `device_weights`). Bicubic taps are the
(n, 4) int64 / float32 tables of srcnn_np.bicubic_taps.cubic_taps. A tile's arrays cover a window
of the whole image whose top-left pixel has global coordinates (oy0, ox0); pixels of a window
outside the image are written as 0, which is exactly the zero padding the next convolution
expects.

Register blocking (the conv kernels): a block of (bx, by) threads computes an output patch of
(by rows, bx * PX columns) for CO output channels (blockIdx.z picks the channel group). Thread
(tx, ty) owns row ty and the PX columns tx, tx + bx, ..., tx + (PX-1) bx (strided, so a warp's
shared-memory reads hit consecutive banks), and keeps PX x CO accumulators in registers. For
every input channel and tap it loads PX inputs and CO weights from shared memory (a weight is
the same address for the whole block: a broadcast) and does PX x CO FMAs.
"""
from collections import namedtuple

import numpy as np
from numba import cuda, float32, types

from ..layers import LAYERS

# K: kernel edge; CIN, COUT: channels; RELU: fused ReLU (these four from the layer table);
# CHUNK: input channels staged in shared memory at a time; CO: output channels per thread;
# PX: output pixels (columns) per thread.
ConvShape = namedtuple("ConvShape", "K CIN COUT CHUNK CO PX RELU")


def conv_shape(layer, *, chunk: int, co: int, px: int) -> ConvShape:
    """The compile-time shape of a layers.Conv's kernel with this register blocking."""
    return ConvShape(K=layer.kernel, CIN=layer.channels_in, COUT=layer.channels_out,
                     CHUNK=chunk, CO=co, PX=px, RELU=layer.relu)


# Blocking chosen by arithmetic, not yet by measurement (no GPU in the session that wrote it): PX x CO
# FMAs per PX + CO shared loads, shared memory per block under 48 KB at 16 x 8 threads
# (conv1 10 KB, conv2 39 KB, conv3 26 KB). To be tuned on a GPU: tools/gpu_check.py.
CONV1 = conv_shape(LAYERS[0], chunk=1, co=16, px=4)
CONV2 = conv_shape(LAYERS[1], chunk=8, co=16, px=4)
CONV3 = conv_shape(LAYERS[2], chunk=4, co=1, px=8)
CONV_SHAPES = (CONV1, CONV2, CONV3)
for _shape in CONV_SHAPES:
    assert _shape.CIN % _shape.CHUNK == 0 and _shape.COUT % _shape.CO == 0, _shape


def conv_grid(shape: ConvShape, out_hw: tuple, block: tuple) -> tuple:
    """Blocks (x, y, z) for an (h, w) output with blockDim `block` = (bx, by)."""
    h, w = out_hw
    bx, by = block
    return -(-w // (bx * shape.PX)), -(-h // by), shape.COUT // shape.CO


def shared_bytes(shape: ConvShape, block: tuple) -> int:
    """Dynamic shared memory of one block: the input tile (CHUNK, by + K - 1, bx PX + K - 1)
    and the weights (CHUNK, K*K, CO), float32."""
    bx, by = block
    k = shape.K
    return 4 * shape.CHUNK * ((by + k - 1) * (bx * shape.PX + k - 1) + k * k * shape.CO)


def device_weights(shape: ConvShape, w: np.ndarray) -> np.ndarray:
    """(K, K, Cin, Cout) float32 weights -> the flat (G, Cin, K*K, CO) layout of the kernels."""
    k, g = shape.K, shape.COUT // shape.CO
    grouped = w.reshape(k * k, shape.CIN, g, shape.CO).transpose(2, 1, 0, 3)
    return np.ascontiguousarray(grouped, dtype=np.float32).ravel()


@cuda.jit(cache=True)
def bicubic_tile(lr, ly0, lx0, yi, yw, xi, xw, oy0, ox0, out):
    """Bicubic upsampling of one window, torch's align_corners=False with clamped borders.

    One thread per output pixel, 2-D grid, blockDim = (x, y) = (columns, rows).
    lr:  (h, w) float32, rows ly0.. and columns lx0.. of the low-res image (every row and
         column the window's taps reach).
    yi, yw: (sH, 4) int64 / float32 row taps of the whole image; xi, xw: (sW, 4) column taps.
    out: (1, Hu, Wu) float32, upsampled pixels of global rows oy0.. and columns ox0..;
         pixels outside the (sH, sW) image are 0.
    """
    x, y = cuda.grid(2)
    if y >= out.shape[1] or x >= out.shape[2]:
        return
    gy = oy0 + y
    gx = ox0 + x
    if gy < 0 or gy >= yi.shape[0] or gx < 0 or gx >= xi.shape[0]:
        out[0, y, x] = float32(0.0)
        return
    acc = float32(0.0)
    for ky in range(4):  # horizontal pass inside, as the CPU kernel (and torch) order it
        r = yi[gy, ky] - ly0
        row = float32(0.0)
        for kx in range(4):
            row += xw[gx, kx] * lr[r, xi[gx, kx] - lx0]
        acc += yw[gy, ky] * row
    out[0, y, x] = acc


@cuda.jit(device=True)
def conv_block(inp, w, b, oy0, ox0, height, width, out, acc, pix, shape):
    """The body of every conv kernel: one block's (by, bx PX) output patch, CO channels.

    inp (Cin, Hi, Wi), out (Cout, Hi - K + 1, Wi - K + 1), w flat (G, Cin, K*K, CO), b (Cout,),
    all float32; output pixel (y, x) is the image pixel (oy0 + y, ox0 + x), written as 0 when
    outside the (height, width) image. acc (PX * CO,) and pix (PX,) are the thread's local
    arrays (sized by the calling kernel, since local array sizes must be compile-time
    constants there); shape is that kernel's ConvShape.
    """
    k, cin, chunk, co, px, relu = shape.K, shape.CIN, shape.CHUNK, shape.CO, shape.PX, shape.RELU
    kk = k * k
    bx = cuda.blockDim.x
    by = cuda.blockDim.y
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    group = cuda.blockIdx.z
    x0 = cuda.blockIdx.x * bx * px  # the block's first output column
    y0 = cuda.blockIdx.y * by
    y = y0 + ty
    sh = by + k - 1  # shared input tile (chunk, sh, sw)
    sw = bx * px + k - 1
    n_tile = chunk * sh * sw
    n_weights = chunk * kk * co
    n_threads = bx * by
    tid = ty * bx + tx
    in_h = inp.shape[1]
    in_w = inp.shape[2]
    smem = cuda.shared.array(0, float32)
    tile = smem[:n_tile]
    wts = smem[n_tile:n_tile + n_weights]  # (chunk, K*K, CO)
    # a thread computes only when one of its pixels is in the image
    busy = y < out.shape[1] and oy0 + y >= 0 and oy0 + y < height
    if busy:
        busy = False
        for j in range(px):
            x = x0 + tx + j * bx
            if x < out.shape[2] and ox0 + x >= 0 and ox0 + x < width:
                busy = True
    for i in range(px * co):
        acc[i] = b[group * co + i % co]
    for c0 in range(0, cin, chunk):
        cuda.syncthreads()  # every thread is done with the previous chunk
        for i in range(tid, n_tile, n_threads):
            c = i // (sh * sw)
            r = (i // sw) % sh
            s = i % sw
            if y0 + r < in_h and x0 + s < in_w:
                tile[i] = inp[c0 + c, y0 + r, x0 + s]
            else:  # only read by threads past the output's edge
                tile[i] = float32(0.0)
        w0 = (group * cin + c0) * kk * co  # this chunk's weights are contiguous in w
        for i in range(tid, n_weights, n_threads):
            wts[i] = w[w0 + i]
        cuda.syncthreads()
        if busy:
            for c in range(chunk):
                for dy in range(k):
                    row = (c * sh + ty + dy) * sw + tx
                    for dx in range(k):
                        for j in range(px):
                            pix[j] = tile[row + dx + j * bx]
                        base = ((c * k + dy) * k + dx) * co
                        for o in range(co):
                            weight = wts[base + o]
                            for j in range(px):
                                acc[j * co + o] += pix[j] * weight
    if y < out.shape[1]:
        inside_y = oy0 + y >= 0 and oy0 + y < height
        for j in range(px):
            x = x0 + tx + j * bx
            if x < out.shape[2]:
                inside = inside_y and ox0 + x >= 0 and ox0 + x < width
                for o in range(co):
                    v = acc[j * co + o]
                    if not inside:
                        v = float32(0.0)
                    elif relu:
                        v = max(v, float32(0.0))
                    out[group * co + o, y, x] = v


# One kernel per layer, all with the signature (inp, w, b, oy0, ox0, height, width, out) of
# conv_block; each sizes its local arrays from its own constants (plain int globals: numba types
# those as compile-time constants, a namedtuple's fields it does not).
ACC1, PIX1 = CONV1.PX * CONV1.CO, CONV1.PX
ACC2, PIX2 = CONV2.PX * CONV2.CO, CONV2.PX
ACC3, PIX3 = CONV3.PX * CONV3.CO, CONV3.PX


@cuda.jit(cache=True)
def conv1(inp, w, b, oy0, ox0, height, width, out):
    conv_block(inp, w, b, oy0, ox0, height, width, out, cuda.local.array(ACC1, float32),
               cuda.local.array(PIX1, float32), CONV1)


@cuda.jit(cache=True)
def conv2(inp, w, b, oy0, ox0, height, width, out):
    conv_block(inp, w, b, oy0, ox0, height, width, out, cuda.local.array(ACC2, float32),
               cuda.local.array(PIX2, float32), CONV2)


@cuda.jit(cache=True)
def conv3(inp, w, b, oy0, ox0, height, width, out):
    conv_block(inp, w, b, oy0, ox0, height, width, out, cuda.local.array(ACC3, float32),
               cuda.local.array(PIX3, float32), CONV3)


CONV_KERNELS = (conv1, conv2, conv3)

PROBE_SIZE = 64


@cuda.jit(cache=True)
def probe(out):
    """cuda_status's check: shared and local memory, a barrier and float32 math in one block of
    PROBE_SIZE threads; out (PROBE_SIZE,) float32 becomes 2 i + 1 (read in reverse order)."""
    i = cuda.threadIdx.x
    smem = cuda.shared.array(0, float32)
    local = cuda.local.array(2, float32)
    local[0] = float32(i)
    local[1] = float32(1.0)
    smem[i] = local[0] * float32(2.0) + local[1]
    cuda.syncthreads()
    n = cuda.blockDim.x
    out[n - 1 - i] = smem[n - 1 - i]


_F32 = {n: types.Array(types.float32, n, "C") for n in (1, 2, 3)}
_INT = types.int64
_CONV_ARGS = (_F32[3], _F32[1], _F32[1], _INT, _INT, _INT, _INT, _F32[3])
# name -> (kernel, argument types as the runner launches it: C-contiguous arrays, int64 scalars);
# cuda_status() loads or compiles each for exactly these.
SIGNATURES = {
    "probe": (probe, (_F32[1],)),
    "bicubic": (bicubic_tile, (_F32[2], _INT, _INT, types.Array(types.int64, 2, "C"), _F32[2],
                               types.Array(types.int64, 2, "C"), _F32[2], _INT, _INT, _F32[3])),
    "conv1": (conv1, _CONV_ARGS),
    "conv2": (conv2, _CONV_ARGS),
    "conv3": (conv3, _CONV_ARGS),
}
