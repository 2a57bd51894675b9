"""Experiment: explicit LLVM float vectors in Numba, so accumulators live in registers."""
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

LANES = 16


class F32Vec(types.Type):
    def __init__(self):
        super().__init__(name=f"F32x{LANES}")


f32vec = F32Vec()


@register_model(F32Vec)
class F32VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(ir.FloatType(), LANES))


def _vec_ptr(context, builder, arrty, arr, idx):
    ary = context.make_array(arrty)(context, builder, arr)
    ptr = builder.gep(ary.data, [idx])
    return builder.bitcast(ptr, ir.PointerType(ir.VectorType(ir.FloatType(), LANES)))


@intrinsic
def vload(typingctx, arr, idx):
    """LANES float32 from the flat C-contiguous array `arr` at element `idx`."""
    def codegen(context, builder, sig, args):
        p = _vec_ptr(context, builder, sig.args[0], args[0], args[1])
        return builder.load(p, align=4)
    return f32vec(arr, idx), codegen


@intrinsic
def vstore(typingctx, arr, idx, v):
    def codegen(context, builder, sig, args):
        p = _vec_ptr(context, builder, sig.args[0], args[0], args[1])
        builder.store(args[2], p, align=4)
        return context.get_dummy_value()
    return types.none(arr, idx, v), codegen


@intrinsic
def vsplat(typingctx, x):
    def codegen(context, builder, sig, args):
        vt = ir.VectorType(ir.FloatType(), LANES)
        v = builder.insert_element(ir.Constant(vt, ir.Undefined), args[0], ir.Constant(ir.IntType(32), 0))
        return builder.shuffle_vector(v, ir.Constant(vt, ir.Undefined),
                                      ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))
    return f32vec(types.float32), codegen


@intrinsic
def vfma(typingctx, a, b, c):
    """a * b + c, one rounding."""
    def codegen(context, builder, sig, args):
        vt = ir.VectorType(ir.FloatType(), LANES)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt, vt, vt]),
                                            f"llvm.fma.v{LANES}f32")
        return builder.call(fn, args)
    return f32vec(f32vec, f32vec, f32vec), codegen


@intrinsic
def vrelu(typingctx, a):
    def codegen(context, builder, sig, args):
        vt = ir.VectorType(ir.FloatType(), LANES)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt, vt]),
                                            f"llvm.maxnum.v{LANES}f32")
        return builder.call(fn, [args[0], ir.Constant(vt, [0.0] * LANES)])
    return f32vec(f32vec), codegen


@njit(parallel=True, nogil=True, fastmath={"nsz", "arcp", "contract", "afn", "reassoc"}, error_model="numpy")
def conv_simd_8x32(xp, w, b, out):
    """xp (H+K-1, W+K-1, CI), w (K, K, CI, 32), b (32,), out (H, W, 32); W % 8 == 0."""

    H, W, CO = out.shape
    K = w.shape[0]
    CI = w.shape[2]
    Wp = xp.shape[1]
    xf = xp.reshape(-1)
    wf = w.reshape(-1)
    of = out.reshape(-1)
    for y in prange(H):
        for x0 in range(0, W, 8):
            b0 = vload(b, 0)
            b1 = vload(b, 16)
            a00 = b0; a01 = b1; a10 = b0; a11 = b1; a20 = b0; a21 = b1; a30 = b0; a31 = b1
            a40 = b0; a41 = b1; a50 = b0; a51 = b1; a60 = b0; a61 = b1; a70 = b0; a71 = b1
            for dy in range(K):
                for dx in range(K):
                    base = ((y + dy) * Wp + x0 + dx) * CI
                    wb = (dy * K + dx) * CI * 32
                    for c in range(CI):
                        w0 = vload(wf, wb + c * 32)
                        w1 = vload(wf, wb + c * 32 + 16)
                        v = vsplat(xf[base + c])
                        a00 = vfma(v, w0, a00); a01 = vfma(v, w1, a01)
                        v = vsplat(xf[base + CI + c])
                        a10 = vfma(v, w0, a10); a11 = vfma(v, w1, a11)
                        v = vsplat(xf[base + 2 * CI + c])
                        a20 = vfma(v, w0, a20); a21 = vfma(v, w1, a21)
                        v = vsplat(xf[base + 3 * CI + c])
                        a30 = vfma(v, w0, a30); a31 = vfma(v, w1, a31)
                        v = vsplat(xf[base + 4 * CI + c])
                        a40 = vfma(v, w0, a40); a41 = vfma(v, w1, a41)
                        v = vsplat(xf[base + 5 * CI + c])
                        a50 = vfma(v, w0, a50); a51 = vfma(v, w1, a51)
                        v = vsplat(xf[base + 6 * CI + c])
                        a60 = vfma(v, w0, a60); a61 = vfma(v, w1, a61)
                        v = vsplat(xf[base + 7 * CI + c])
                        a70 = vfma(v, w0, a70); a71 = vfma(v, w1, a71)
            ob = (y * W + x0) * 32
            vstore(of, ob, vrelu(a00)); vstore(of, ob + 16, vrelu(a01))
            vstore(of, ob + 32, vrelu(a10)); vstore(of, ob + 48, vrelu(a11))
            vstore(of, ob + 64, vrelu(a20)); vstore(of, ob + 80, vrelu(a21))
            vstore(of, ob + 96, vrelu(a30)); vstore(of, ob + 112, vrelu(a31))
            vstore(of, ob + 128, vrelu(a40)); vstore(of, ob + 144, vrelu(a41))
            vstore(of, ob + 160, vrelu(a50)); vstore(of, ob + 176, vrelu(a51))
            vstore(of, ob + 192, vrelu(a60)); vstore(of, ob + 208, vrelu(a61))
            vstore(of, ob + 224, vrelu(a70)); vstore(of, ob + 240, vrelu(a71))
    return out
