"""Numba CPU kernels: bicubic upsampling and the SRCNN convolutions.

Layouts: images are (H, W) float32; feature maps are channels-last (H, W, C) float32;
conv weights are (KH, KW, Cin, Cout) float32 (KernelWeights.from_weights converts torch's OIHW).

The convolutions read a *padded map* and write into the interior of the next one, so no layer
makes a padded copy of its input:

    padded map of an (h, w, C) feature map read by a K x K conv (p = K // 2):
        shape (h + 2p, ceil8(w) + 2p, C) float32, C-contiguous, zero everywhere except
        [p:p + h, p:p + w], which holds the map.

The zero border is the conv's zero padding (torch's Conv2d(padding=K // 2)); the extra columns up to
ceil8(w) let every kernel work on whole blocks of 8 output pixels. A kernel only ever writes the
interior of its output map, so buffers made with `padded_map` keep their zero border.

The conv kernels keep 8 output pixels x 16-lane vectors of accumulators in registers through
explicit LLVM float vectors (F32x16 below); plain Numba loops leave accumulators in memory.
"""
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

from ..config import JIT_OPTIONS

CUBIC_A = np.float32(-0.75)  # torch's bicubic coefficient
PIXEL_BLOCK = 8  # output pixels per register block of the conv kernels
LANES = 16  # float32 lanes of one F32x16 vector (one AVX-512 register)


def ceil_block(n: int) -> int:
    """n rounded up to a whole number of PIXEL_BLOCKs."""
    return -(-n // PIXEL_BLOCK) * PIXEL_BLOCK


def padded_map(h: int, w: int, channels: int, pad: int, storage=None) -> np.ndarray:
    """Padded map (h + 2 pad, ceil8(w) + 2 pad, channels) float32 for an (h, w, channels) map.

    storage None: a new zeroed array. Otherwise a flat float32 array, at least as large, that the
    map is laid into (reusing memory from window to window): its border is zeroed, its interior
    [pad:pad + h, pad:pad + w] is left as it was, for the kernel that fills the map to overwrite.
    """
    shape = (h + 2 * pad, ceil_block(w) + 2 * pad, channels)
    if storage is None:
        return np.zeros(shape, dtype=np.float32)
    m = storage[:shape[0] * shape[1] * shape[2]].reshape(shape)
    m[:pad] = 0
    m[pad + h:] = 0
    m[pad:pad + h, :pad] = 0
    m[pad:pad + h, pad + w:] = 0
    return m


# ---------------------------------------------------------------------------------------------
# F32x16: 16 float32 lanes as one LLVM vector value, so Numba keeps it in a register.
# The load/store intrinsics take a C-contiguous array and a flat element offset; callers check
# that offset + 16 stays inside the array.

_VEC = ir.VectorType(ir.FloatType(), LANES)


class F32x16(types.Type):
    def __init__(self):
        super().__init__(name="F32x16")


f32x16 = F32x16()


@register_model(F32x16)
class _F32x16Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VEC)


def _element_ptr(context, builder, arrty, arr, offset):
    ary = context.make_array(arrty)(context, builder, arr)
    return builder.gep(ary.data, [offset])


def _check_c_float32(arr):
    if not (isinstance(arr, types.Array) and arr.dtype == types.float32 and arr.layout == "C"):
        raise TypeError(f"F32x16 access needs a C-contiguous float32 array, got {arr}")


@intrinsic
def vload(typingctx, arr, offset):
    """arr.flat[offset:offset + 16] as an F32x16."""
    _check_c_float32(arr)

    def codegen(context, builder, sig, args):
        ptr = _element_ptr(context, builder, sig.args[0], args[0], args[1])
        return builder.load(builder.bitcast(ptr, _VEC.as_pointer()), align=4)

    return f32x16(arr, offset), codegen


@intrinsic
def vstore(typingctx, arr, offset, v):
    """arr.flat[offset:offset + 16] = v."""
    _check_c_float32(arr)

    def codegen(context, builder, sig, args):
        ptr = _element_ptr(context, builder, sig.args[0], args[0], args[1])
        builder.store(args[2], builder.bitcast(ptr, _VEC.as_pointer()), align=4)
        return context.get_dummy_value()

    return types.none(arr, offset, v), codegen


@intrinsic
def vsplat(typingctx, arr, offset):
    """arr.flat[offset] in all 16 lanes."""
    _check_c_float32(arr)

    def codegen(context, builder, sig, args):
        x = builder.load(_element_ptr(context, builder, sig.args[0], args[0], args[1]))
        one = builder.insert_element(ir.Constant(_VEC, ir.Undefined), x, ir.Constant(ir.IntType(32), 0))
        return builder.shuffle_vector(one, ir.Constant(_VEC, ir.Undefined),
                                      ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))

    return f32x16(arr, offset), codegen


@intrinsic
def vzero(typingctx):
    """16 lanes of +0.0."""
    def codegen(context, builder, sig, args):
        return ir.Constant(_VEC, [0.0] * LANES)

    return f32x16(), codegen


@intrinsic
def vfma(typingctx, a, b, c):
    """a * b + c lane by lane, one rounding."""
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VEC, [_VEC] * 3),
                                            "llvm.fma.v16f32")
        return builder.call(fn, args)

    return f32x16(f32x16, f32x16, f32x16), codegen


@intrinsic
def vrelu(typingctx, a):
    """max(a, 0) lane by lane; NaN stays NaN, as torch's ReLU does."""
    def codegen(context, builder, sig, args):
        zero = ir.Constant(_VEC, [0.0] * LANES)
        return builder.select(builder.fcmp_ordered("<", args[0], zero), zero, args[0])

    return f32x16(f32x16), codegen


@intrinsic
def vsum(typingctx, a):
    """The sum of the 16 lanes (tree order), float32."""
    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(ir.FloatType(), [ir.FloatType(), _VEC])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.vector.reduce.fadd.v16f32")
        return builder.call(fn, [ir.Constant(ir.FloatType(), -0.0), args[0]], fastmath=("reassoc",))

    return types.float32(f32x16), codegen


# ---------------------------------------------------------------------------------------------
# Bicubic upsampling


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
def bicubic_window(img, scale, y0, x0, h, w, dst, pad):
    """The (h, w) window [y0:y0 + h, x0:x0 + w] of the bicubic upsampling of img, into dst.

    img (H, W) float32 -> dst[pad:pad + h, pad:pad + w] of dst (>= h + 2 pad, >= w + 2 pad) float32;
    nothing else of dst is written. Every output pixel is computed exactly as in the whole
    (scale H, scale W) image (borders clamp to the image, not to the window), so windows tile
    the upsampled image bit for bit.
    """
    H, W = img.shape
    if (y0 < 0 or x0 < 0 or h < 1 or w < 1 or y0 + h > H * scale or x0 + w > W * scale
            or dst.shape[0] < h + 2 * pad or dst.shape[1] < w + 2 * pad):
        raise ValueError("bicubic_window: window outside the image or the destination")
    xi, xw = cubic_taps(W, scale)
    yi, yw = cubic_taps(H, scale)
    r0 = yi[y0, 0]  # source rows the window needs; tap indices grow along the axis
    r1 = yi[y0 + h - 1, 3] + 1
    rows = np.empty((r1 - r0, w), dtype=np.float32)  # horizontal pass first, as torch does
    for r in prange(r1 - r0):
        for o in range(w):
            acc = np.float32(0.0)
            for k in range(4):
                acc += xw[x0 + o, k] * img[r0 + r, xi[x0 + o, k]]
            rows[r, o] = acc
    for o in prange(h):
        for x in range(w):
            acc = np.float32(0.0)
            for k in range(4):
                acc += yw[y0 + o, k] * rows[yi[y0 + o, k] - r0, x]
            dst[pad + o, pad + x] = acc


def bicubic_upsample(img, scale):
    """(H, W) float32 -> (scale*H, scale*W) float32, equal to torch bicubic (align_corners=False)."""
    img = np.require(img, np.float32, ["C_CONTIGUOUS", "WRITEABLE"])  # one compiled version
    H, W = img.shape
    out = np.empty((H * scale, W * scale), dtype=np.float32)
    bicubic_window(img, scale, 0, 0, H * scale, W * scale, out, 0)
    return out


# ---------------------------------------------------------------------------------------------
# Convolutions on padded maps


@njit(**JIT_OPTIONS)
def conv_relu_row(src, w, b, sy, width, relu, dst, dy, dx):
    """One output row of a conv layer (optionally + ReLU): dst[dy, dx + x, :] for x < width.

    src (>= sy + K, >= ceil8(width) + K - 1, Cin) float32 padded map, the row reads src rows
    sy .. sy + K - 1; w (K, K, Cin, Cout) float32 with Cout a multiple of 32; b (Cout,) float32;
    dst (>= dy + 1, >= dx + width, Cout) float32. Nothing else of dst is written.
    Register block: 8 output pixels x 32 output channels (16 F32x16 accumulators); the input
    value of each pixel is broadcast, the 32 weights of one (dy, dx, c) are two vector loads.
    """
    K = w.shape[0]
    Cin = w.shape[2]
    Cout = w.shape[3]
    Ws = src.shape[1]
    Wd = dst.shape[1]
    for g in range(0, Cout, 32):
        for x0 in range(0, width, 8):
            a00 = vload(b, g)
            a01 = vload(b, g + 16)
            a10 = a00
            a11 = a01
            a20 = a00
            a21 = a01
            a30 = a00
            a31 = a01
            a40 = a00
            a41 = a01
            a50 = a00
            a51 = a01
            a60 = a00
            a61 = a01
            a70 = a00
            a71 = a01
            for ky in range(K):
                for kx in range(K):
                    s = ((sy + ky) * Ws + x0 + kx) * Cin  # src[sy + ky, x0 + kx, 0]
                    t = (ky * K + kx) * Cin * Cout + g  # w[ky, kx, 0, g]
                    for c in range(Cin):
                        w0 = vload(w, t + c * Cout)
                        w1 = vload(w, t + c * Cout + 16)
                        v = vsplat(src, s + c)
                        a00 = vfma(v, w0, a00)
                        a01 = vfma(v, w1, a01)
                        v = vsplat(src, s + Cin + c)
                        a10 = vfma(v, w0, a10)
                        a11 = vfma(v, w1, a11)
                        v = vsplat(src, s + 2 * Cin + c)
                        a20 = vfma(v, w0, a20)
                        a21 = vfma(v, w1, a21)
                        v = vsplat(src, s + 3 * Cin + c)
                        a30 = vfma(v, w0, a30)
                        a31 = vfma(v, w1, a31)
                        v = vsplat(src, s + 4 * Cin + c)
                        a40 = vfma(v, w0, a40)
                        a41 = vfma(v, w1, a41)
                        v = vsplat(src, s + 5 * Cin + c)
                        a50 = vfma(v, w0, a50)
                        a51 = vfma(v, w1, a51)
                        v = vsplat(src, s + 6 * Cin + c)
                        a60 = vfma(v, w0, a60)
                        a61 = vfma(v, w1, a61)
                        v = vsplat(src, s + 7 * Cin + c)
                        a70 = vfma(v, w0, a70)
                        a71 = vfma(v, w1, a71)
            if relu:
                a00 = vrelu(a00)
                a01 = vrelu(a01)
                a10 = vrelu(a10)
                a11 = vrelu(a11)
                a20 = vrelu(a20)
                a21 = vrelu(a21)
                a30 = vrelu(a30)
                a31 = vrelu(a31)
                a40 = vrelu(a40)
                a41 = vrelu(a41)
                a50 = vrelu(a50)
                a51 = vrelu(a51)
                a60 = vrelu(a60)
                a61 = vrelu(a61)
                a70 = vrelu(a70)
                a71 = vrelu(a71)
            d = (dy * Wd + dx + x0) * Cout + g  # dst[dy, dx + x0, g]
            n = min(8, width - x0)  # the last block of a row may be partial
            vstore(dst, d, a00)
            vstore(dst, d + 16, a01)
            if n > 1:
                vstore(dst, d + Cout, a10)
                vstore(dst, d + Cout + 16, a11)
            if n > 2:
                vstore(dst, d + 2 * Cout, a20)
                vstore(dst, d + 2 * Cout + 16, a21)
            if n > 3:
                vstore(dst, d + 3 * Cout, a30)
                vstore(dst, d + 3 * Cout + 16, a31)
            if n > 4:
                vstore(dst, d + 4 * Cout, a40)
                vstore(dst, d + 4 * Cout + 16, a41)
            if n > 5:
                vstore(dst, d + 5 * Cout, a50)
                vstore(dst, d + 5 * Cout + 16, a51)
            if n > 6:
                vstore(dst, d + 6 * Cout, a60)
                vstore(dst, d + 6 * Cout + 16, a61)
            if n > 7:
                vstore(dst, d + 7 * Cout, a70)
                vstore(dst, d + 7 * Cout + 16, a71)


@njit(**JIT_OPTIONS)
def single_out_row(src, w, b, sy, width, dst, dy):
    """One output row of a conv with one output channel, no ReLU: dst[dy, x] for x < width.

    src (>= sy + K, >= ceil8(width) + K - 1, Cin) float32 padded map, Cin a multiple of 32, the row
    reads src rows sy .. sy + K - 1; w (K, K, Cin, 1) float32; b (1,) float32; dst (>= dy + 1, >= width).
    Vectorised over input channels: 8 pixels x 2 F32x16 accumulators (channels c and c + 16 of each
    32-channel group), summed across lanes at the end.
    """
    K = w.shape[0]
    Cin = w.shape[2]
    Ws = src.shape[1]
    bias = b[0]
    for x0 in range(0, width, 8):
        z = vzero()
        a0 = z
        a1 = z
        a2 = z
        a3 = z
        a4 = z
        a5 = z
        a6 = z
        a7 = z
        e0 = z
        e1 = z
        e2 = z
        e3 = z
        e4 = z
        e5 = z
        e6 = z
        e7 = z
        for ky in range(K):
            for kx in range(K):
                s = ((sy + ky) * Ws + x0 + kx) * Cin
                t = (ky * K + kx) * Cin
                for c in range(0, Cin, 32):
                    wa = vload(w, t + c)
                    we = vload(w, t + c + 16)
                    s0 = s + c
                    a0 = vfma(vload(src, s0), wa, a0)
                    e0 = vfma(vload(src, s0 + 16), we, e0)
                    s1 = s + Cin + c
                    a1 = vfma(vload(src, s1), wa, a1)
                    e1 = vfma(vload(src, s1 + 16), we, e1)
                    s2 = s + 2 * Cin + c
                    a2 = vfma(vload(src, s2), wa, a2)
                    e2 = vfma(vload(src, s2 + 16), we, e2)
                    s3 = s + 3 * Cin + c
                    a3 = vfma(vload(src, s3), wa, a3)
                    e3 = vfma(vload(src, s3 + 16), we, e3)
                    s4 = s + 4 * Cin + c
                    a4 = vfma(vload(src, s4), wa, a4)
                    e4 = vfma(vload(src, s4 + 16), we, e4)
                    s5 = s + 5 * Cin + c
                    a5 = vfma(vload(src, s5), wa, a5)
                    e5 = vfma(vload(src, s5 + 16), we, e5)
                    s6 = s + 6 * Cin + c
                    a6 = vfma(vload(src, s6), wa, a6)
                    e6 = vfma(vload(src, s6 + 16), we, e6)
                    s7 = s + 7 * Cin + c
                    a7 = vfma(vload(src, s7), wa, a7)
                    e7 = vfma(vload(src, s7 + 16), we, e7)
        n = min(8, width - x0)
        dst[dy, x0] = vsum(a0) + vsum(e0) + bias
        if n > 1:
            dst[dy, x0 + 1] = vsum(a1) + vsum(e1) + bias
        if n > 2:
            dst[dy, x0 + 2] = vsum(a2) + vsum(e2) + bias
        if n > 3:
            dst[dy, x0 + 3] = vsum(a3) + vsum(e3) + bias
        if n > 4:
            dst[dy, x0 + 4] = vsum(a4) + vsum(e4) + bias
        if n > 5:
            dst[dy, x0 + 5] = vsum(a5) + vsum(e5) + bias
        if n > 6:
            dst[dy, x0 + 6] = vsum(a6) + vsum(e6) + bias
        if n > 7:
            dst[dy, x0 + 7] = vsum(a7) + vsum(e7) + bias


@njit(parallel=True, **JIT_OPTIONS)
def conv_relu_into(src, w, b, width, relu, dst, dst_pad):
    """One conv layer (optionally + ReLU) from a padded map into the interior of another.

    src (H + K - 1, >= ceil8(width) + K - 1, Cin) float32 padded map of an (H, width, Cin) map;
    w (K, K, Cin, Cout) float32 with Cout a multiple of 32; b (Cout,) float32;
    dst (H + 2 dst_pad, >= width + 2 dst_pad, Cout) float32: dst[dst_pad + y, dst_pad + x] is set
    for y < H, x < width, nothing else is written. Rows are shared out among the threads.
    """
    K = w.shape[0]
    H = src.shape[0] - K + 1
    if (w.shape[1] != K or src.shape[2] != w.shape[2] or dst.shape[2] != w.shape[3]
            or w.shape[3] % 32 != 0 or b.shape[0] != w.shape[3] or src.shape[1] < (width + 7) // 8 * 8 + K - 1
            or dst.shape[0] < H + 2 * dst_pad or dst.shape[1] < width + 2 * dst_pad):
        raise ValueError("conv_relu_into: inconsistent shapes")
    for y in prange(H):
        conv_relu_row(src, w, b, y, width, relu, dst, dst_pad + y, dst_pad)


@njit(parallel=True, **JIT_OPTIONS)
def conv_single_out_into(src, w, b, width, dst):
    """The last layer alone: a conv with one output channel, no ReLU.

    src (H + K - 1, >= ceil8(width) + K - 1, Cin) float32 padded map, Cin a multiple of 32;
    w (K, K, Cin, 1) float32; b (1,) float32; dst (>= H, >= width) float32 gets the (H, width) result.
    """
    K = w.shape[0]
    H = src.shape[0] - K + 1
    if (w.shape[1] != K or w.shape[3] != 1 or src.shape[2] != w.shape[2] or w.shape[2] % 32 != 0
            or src.shape[1] < (width + 7) // 8 * 8 + K - 1 or dst.shape[0] < H or dst.shape[1] < width):
        raise ValueError("conv_single_out_into: inconsistent shapes")
    for y in prange(H):
        single_out_row(src, w, b, y, width, dst, y)


FUSED_CHUNK_ROWS = 16  # conv2 rows a thread computes before running conv3 over them


@njit(parallel=True, **JIT_OPTIONS)
def conv_relu_then_single_out_into(src, w, b, w_last, b_last, width, dst, bands):
    """Two layers fused: conv + ReLU (w, b), then the one-output conv (w_last, b_last).

    src (H + K - 1, >= ceil8(width) + K - 1, Cin) float32 padded map; w (K, K, Cin, Cmid),
    w_last (KL, KL, Cmid, 1); dst (>= H, >= width) float32 gets the (H, width) result. Equals
    conv_relu_into followed by conv_single_out_into, without their (H, width, Cmid) middle map:
    each of `bands` threads (pass numba.get_num_threads()) takes a band of rows and computes the
    middle rows FUSED_CHUNK_ROWS at a time into a small zero-bordered buffer that stays in cache,
    then the last layer's rows from it; the KL - 1 middle rows at each band edge are computed by
    both neighbours.
    """
    K = w.shape[0]
    KL = w_last.shape[0]
    p = KL // 2
    Cmid = w.shape[3]
    H = src.shape[0] - K + 1
    if (w.shape[1] != K or src.shape[2] != w.shape[2] or Cmid % 32 != 0 or b.shape[0] != Cmid
            or w_last.shape[1] != KL or w_last.shape[2] != Cmid or w_last.shape[3] != 1
            or src.shape[1] < (width + 7) // 8 * 8 + K - 1 or dst.shape[0] < H or dst.shape[1] < width):
        raise ValueError("conv_relu_then_single_out_into: inconsistent shapes")
    chunk = FUSED_CHUNK_ROWS
    bands = max(1, min(bands, H))
    band = (H + bands - 1) // bands
    for t in prange(bands):
        r0 = t * band
        r1 = min(H, r0 + band)
        # mid[i] holds middle row c0 - p + i (zero outside the image), zero-bordered for the last layer
        mid = np.zeros((chunk + 2 * p, (width + 7) // 8 * 8 + 2 * p, Cmid), dtype=np.float32)
        for c0 in range(r0, r1, chunk):
            c1 = min(c0 + chunk, r1)
            first = 0 if c0 == r0 else 2 * p  # later chunks start with the rows kept from the last
            for i in range(first, c1 - c0 + 2 * p):
                r = c0 - p + i
                if 0 <= r < H:
                    conv_relu_row(src, w, b, r, width, True, mid, i, p)
                else:
                    mid[i] = 0.0
            for y in range(c0, c1):
                single_out_row(mid, w_last, b_last, y - c0, width, dst, y)
            mid[:2 * p] = mid[c1 - c0:c1 - c0 + 2 * p]
