"""Register blocks of float32 accumulators as Numba values, for any block shape (isa.BlockShape).

Plain Numba loops leave a conv's accumulators in memory; these intrinsics emit LLVM vector code
that keeps a whole block in registers instead. A block value (type Accumulators) holds
pixels x vectors LLVM `<lanes x float>` vectors: acc[p][j] is output pixel p, channels
j * lanes .. (j + 1) * lanes - 1 of the block's channel group. The shape is part of the Numba type,
so one kernel source compiles to the block of each variant: a kernel names its shape with a
BlockShape constant (a global or closure variable) and passes it to block_bias / block_zero.

Arrays are C-contiguous float32, addressed by a flat element offset; callers keep every vector
inside the array (aligned_empty makes arrays that start on a cache line, so that no vector load
straddles two). Multiply-adds use llvm.fmuladd: one FMA where the target has FMA (one rounding),
a multiply and an add where it has not (SSE), never a library call.

Numba's on-disk cache is stamped by the source file of each cached function (kernels.py), not by
this file: after editing an intrinsic here, clear the cache (NUMBA_CACHE_DIR or __pycache__).
"""
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.core.imputils import lower_constant
from numba.extending import intrinsic, models, register_model, typeof_impl

from . import winograd
from .isa import BlockShape

CACHE_LINE = 64  # bytes


def aligned_empty(shape) -> np.ndarray:
    """An uninitialised float32 array of `shape` whose data starts on a 64-byte cache line.

    NumPy starts a large array 16 bytes into a page: then half of the kernels' 32-byte vector
    loads and stores, and every 64-byte one, straddle two cache lines and cost two. The model's
    maps and weights are allocated here (the model in 0.93x the time on Zen 3, docs/performance-cpu.md).
    """
    n = int(np.prod(shape))
    raw = np.empty(n + CACHE_LINE // 4, dtype=np.float32)
    start = (-raw.ctypes.data % CACHE_LINE) // 4
    return raw[start:start + n].reshape(shape)


def aligned_copy(a: np.ndarray) -> np.ndarray:
    """a as a C-contiguous float32 array on a cache line (aligned_empty), a writable copy."""
    out = aligned_empty(a.shape)
    out[...] = a
    return out


_F32 = ir.FloatType()
_I32 = ir.IntType(32)


class BlockShapeType(types.Type):
    """The Numba type of a BlockShape constant: compile-time only, its value is a dummy."""

    def __init__(self, shape: BlockShape):
        self.shape = shape
        super().__init__(name=f"BlockShape({shape.pixels}x{shape.vectors}x{shape.lanes})")


class Accumulators(types.Type):
    """A register block: shape.pixels x shape.vectors vectors of shape.lanes float32."""

    def __init__(self, shape: BlockShape):
        self.shape = shape
        super().__init__(name=f"Accumulators({shape.pixels}x{shape.vectors}x{shape.lanes})")


def _vector(shape):
    return ir.VectorType(_F32, shape.lanes)


@typeof_impl.register(BlockShape)
def _typeof_block_shape(val, c):
    return BlockShapeType(val)


register_model(BlockShapeType)(models.OpaqueModel)


@lower_constant(BlockShapeType)
def _block_shape_constant(context, builder, ty, pyval):
    return context.get_dummy_value()


@register_model(Accumulators)
class _AccumulatorsModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        shape = fe_type.shape
        super().__init__(dmm, fe_type, ir.ArrayType(_vector(shape), shape.pixels * shape.vectors))


def _check_c_float32(arr):
    if not (isinstance(arr, types.Array) and arr.dtype == types.float32 and arr.layout == "C"):
        raise TypeError(f"register blocks need C-contiguous float32 arrays, got {arr}")


class _Emitter:
    """LLVM IR helpers for one intrinsic call: vector loads and stores at flat element offsets."""

    def __init__(self, context, builder, shape):
        self.context, self.builder, self.shape = context, builder, shape
        self.vec = _vector(shape)

    def ptr(self, arrty, arr, offset):
        data = self.context.make_array(arrty)(self.context, self.builder, arr).data
        return self.builder.gep(data, [offset])

    def offset(self, base, k):
        return self.builder.add(base, ir.Constant(base.type, k))

    def load(self, arrty, arr, offset):
        ptr = self.builder.bitcast(self.ptr(arrty, arr, offset), self.vec.as_pointer())
        return self.builder.load(ptr, align=4)

    def store(self, value, arrty, arr, offset):
        ptr = self.builder.bitcast(self.ptr(arrty, arr, offset), self.vec.as_pointer())
        self.builder.store(value, ptr, align=4)

    def splat(self, arrty, arr, offset):
        x = self.builder.load(self.ptr(arrty, arr, offset))
        one = self.builder.insert_element(ir.Constant(self.vec, ir.Undefined), x, ir.Constant(_I32, 0))
        lanes = self.shape.lanes
        return self.builder.shuffle_vector(one, ir.Constant(self.vec, ir.Undefined),
                                           ir.Constant(ir.VectorType(_I32, lanes), [0] * lanes))

    def fmuladd(self, a, b, c):
        fn = cgutils.get_or_insert_function(self.builder.module, ir.FunctionType(self.vec, [self.vec] * 3),
                                            f"llvm.fmuladd.v{self.shape.lanes}f32")
        return self.builder.call(fn, [a, b, c])

    def unpack(self, acc):
        """acc as a list of rows: rows[p][j] is pixel p, vector j."""
        v = self.shape.vectors
        return [[self.builder.extract_value(acc, p * v + j) for j in range(v)] for p in range(self.shape.pixels)]

    def pack(self, rows):
        acc = ir.Constant(ir.ArrayType(self.vec, self.shape.pixels * self.shape.vectors), ir.Undefined)
        for p, row in enumerate(rows):
            for j, x in enumerate(row):
                acc = self.builder.insert_value(acc, x, p * self.shape.vectors + j)
        return acc


@intrinsic
def block_pixels(typingctx, block):
    """Output pixels of the block (a compile-time constant)."""
    def codegen(context, builder, sig, args):
        return ir.Constant(ir.IntType(64), sig.args[0].shape.pixels)

    return types.int64(block), codegen


@intrinsic
def block_channels(typingctx, block):
    """Channels of the block, vectors x lanes (a compile-time constant)."""
    def codegen(context, builder, sig, args):
        return ir.Constant(ir.IntType(64), sig.args[0].shape.channels)

    return types.int64(block), codegen


@intrinsic
def block_lanes(typingctx, block):
    """Lanes of one vector of the block (a compile-time constant)."""
    def codegen(context, builder, sig, args):
        return ir.Constant(ir.IntType(64), sig.args[0].shape.lanes)

    return types.int64(block), codegen


@intrinsic
def block_zero(typingctx, block):
    """A block of +0.0 accumulators."""
    acc = Accumulators(block.shape)

    def codegen(context, builder, sig, args):
        e = _Emitter(context, builder, block.shape)
        zero = ir.Constant(e.vec, [0.0] * block.shape.lanes)
        return e.pack([[zero] * block.shape.vectors] * block.shape.pixels)

    return acc(block), codegen


@intrinsic
def block_bias(typingctx, block, b, g):
    """Every pixel starts at the biases b.flat[g:g + channels]."""
    _check_c_float32(b)
    acc = Accumulators(block.shape)

    def codegen(context, builder, sig, args):
        e = _Emitter(context, builder, block.shape)
        bias = [e.load(sig.args[1], args[1], e.offset(args[2], j * block.shape.lanes))
                for j in range(block.shape.vectors)]
        return e.pack([bias] * block.shape.pixels)

    return acc(block, b, g), codegen


def _block_fma_codegen(broadcast: bool):
    """The codegen of acc[p][j] += x[p][j] * w.flat[t + j * lanes:][:lanes] for every p, j, where
    x[p][j] is src.flat[s + p * stride] in all lanes (broadcast) or
    src.flat[s + p * stride + j * lanes:][:lanes] (elementwise)."""
    def codegen(context, builder, sig, args):
        shape = sig.args[0].shape
        e = _Emitter(context, builder, shape)
        a, src_v, s_v, stride_v, w_v, t_v = args
        weights = [e.load(sig.args[4], w_v, e.offset(t_v, j * shape.lanes)) for j in range(shape.vectors)]
        rows = e.unpack(a)
        at = s_v
        for p in range(shape.pixels):
            if broadcast:
                xs = [e.splat(sig.args[1], src_v, at)] * shape.vectors
            else:
                xs = [e.load(sig.args[1], src_v, e.offset(at, j * shape.lanes)) for j in range(shape.vectors)]
            rows[p] = [e.fmuladd(x, wj, r) for x, wj, r in zip(xs, weights, rows[p])]
            at = builder.add(at, stride_v)
        return e.pack(rows)

    return codegen


@intrinsic
def block_fma_broadcast(typingctx, acc, src, s, stride, w, t):
    """acc[p][j] += src.flat[s + p * stride] * w.flat[t + j * lanes:][:lanes] for every p, j.

    One input value per pixel, broadcast to all lanes, times one row of weights: the inner step
    of a conv vectorised over output channels.
    """
    _check_c_float32(src)
    _check_c_float32(w)
    return acc(acc, src, s, stride, w, t), _block_fma_codegen(broadcast=True)


@intrinsic
def block_fma_elementwise(typingctx, acc, src, s, stride, w, t):
    """acc[p][j] += src.flat[s + p * stride + j * lanes:][:lanes] * w.flat[t + j * lanes:][:lanes].

    Lane by lane over input channels: the inner step of a conv with one output channel, whose
    lanes are summed at the end (block_sum_store).
    """
    _check_c_float32(src)
    _check_c_float32(w)
    return acc(acc, src, s, stride, w, t), _block_fma_codegen(broadcast=False)


@intrinsic
def block_store(typingctx, acc, dst, d, stride, n, relu):
    """dst.flat[d + p * stride + j * lanes:][:lanes] = acc[p][j] for pixels p < n (max(., 0) if relu).

    ReLU keeps NaN as NaN, as torch's does.
    """
    _check_c_float32(dst)

    def codegen(context, builder, sig, args):
        shape = sig.args[0].shape
        e = _Emitter(context, builder, shape)
        a, dst_v, d_v, stride_v, n_v, relu_v = args
        zero = ir.Constant(e.vec, [0.0] * shape.lanes)
        rows = e.unpack(a)
        at = d_v
        for p in range(shape.pixels):
            with builder.if_then(builder.icmp_signed(">", n_v, ir.Constant(n_v.type, p))):
                for j, x in enumerate(rows[p]):
                    clipped = builder.select(builder.fcmp_ordered("<", x, zero), zero, x)
                    e.store(builder.select(relu_v, clipped, x), sig.args[1], dst_v, e.offset(at, j * shape.lanes))
            at = builder.add(at, stride_v)
        return context.get_dummy_value()

    return types.none(acc, dst, d, stride, n, types.boolean), codegen


@intrinsic
def block_sum_store(typingctx, acc, dst, d, n, bias):
    """dst.flat[d + p] = bias + the sum of all lanes of acc[p][:] for pixels p < n."""
    _check_c_float32(dst)

    def codegen(context, builder, sig, args):
        shape = sig.args[0].shape
        e = _Emitter(context, builder, shape)
        a, dst_v, d_v, n_v, bias_v = args
        reduce = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_F32, [_F32, e.vec]),
                                                f"llvm.vector.reduce.fadd.v{shape.lanes}f32")
        for p, row in enumerate(e.unpack(a)):
            with builder.if_then(builder.icmp_signed(">", n_v, ir.Constant(n_v.type, p))):
                total = row[0]
                for x in row[1:]:
                    total = builder.fadd(total, x)
                s = builder.call(reduce, [ir.Constant(_F32, -0.0), total], fastmath=("reassoc",))
                builder.store(builder.fadd(s, bias_v), e.ptr(sig.args[1], dst_v, e.offset(d_v, p)))
        return context.get_dummy_value()

    return types.none(acc, dst, d, n, types.float32), codegen


@intrinsic
def copy_vector(typingctx, block, src, s, dst, d):
    """dst.flat[d:][:lanes] = src.flat[s:][:lanes]: one vector load and store, no loop for LLVM to
    unroll (such loops, however short, take the registers a hot loop keeps its constants in)."""
    _check_c_float32(src)
    _check_c_float32(dst)

    def codegen(context, builder, sig, args):
        e = _Emitter(context, builder, sig.args[0].shape)
        e.store(e.load(sig.args[1], args[1], args[2]), sig.args[3], args[3], args[4])
        return context.get_dummy_value()

    return types.none(block, src, s, dst, d), codegen


def _opaque_table(builder, name, matrix):
    """A pointer to a constant float32 table of matrix's entries (row-major) in the module.

    The pointer comes back from an empty inline-assembly statement, so LLVM cannot hoist loads
    through it (or the constants themselves) out of the caller's loops: hoisted, the transforms'
    constants stay live across the register block's loop, where they spill.
    """
    flat = [float(x) for row in matrix for x in row]
    table = builder.module.globals.get(name)
    if table is None:
        table = cgutils.global_constant(builder.module, name, ir.Constant(ir.ArrayType(_F32, len(flat)), flat))
    ptr = _F32.as_pointer()
    return builder.asm(ir.FunctionType(ptr, [ptr]), "", "=r,0", [builder.bitcast(table, ptr)], side_effect=True)


def _coefficient_vectors(e, builder, base, matrix):
    """(i, k) -> matrix[i][k] in all lanes, loaded through base (_opaque_table) where first used;
    equal coefficients share one load. Use the result within one basic block."""
    cols = len(matrix[0])
    loaded = {}

    def vector(i, k):
        value = float(matrix[i][k])
        if value not in loaded:
            x = builder.load(builder.gep(base, [ir.Constant(_I32, i * cols + k)]))
            one = builder.insert_element(ir.Constant(e.vec, ir.Undefined), x, ir.Constant(_I32, 0))
            loaded[value] = builder.shuffle_vector(one, ir.Constant(e.vec, ir.Undefined),
                                                   ir.Constant(ir.VectorType(_I32, e.shape.lanes), [0] * e.shape.lanes))
        return loaded[value]
    return vector


def _linear_combination(builder, e, coefficients, load_term, coefficient_vector):
    """sum_k coefficients[k] * load_term(k) as one vector, k ascending, zero terms skipped, terms of
    +-1 added or subtracted; coefficient_vector(k) is coefficients[k] in all lanes (Winograd's
    small fractions)."""
    acc = None
    for k, coef in enumerate(coefficients):
        if coef == 0.0:
            continue
        x = load_term(k)
        if coef in (1.0, -1.0):  # an add or subtract: the same single rounding as the FMA
            if acc is None:
                acc = x if coef == 1.0 else builder.fneg(x)
            else:
                acc = builder.fadd(acc, x) if coef == 1.0 else builder.fsub(acc, x)
            continue
        c = coefficient_vector(k)
        acc = builder.fmul(x, c) if acc is None else e.fmuladd(x, c, acc)
    return acc


def _sign_pairs(matrix):
    """Rows of matrix as singles and sign pairs: [(j, None, None)] or [(j, j2, same)], where row j2
    equals row j on the columns in `same` and is its negative on the others (a point and its
    negative: +-1, +-2, +-1/2). A pair costs one even and one odd sum and their sum and difference."""
    rows, used = [], set()
    for j, row in enumerate(matrix):
        if j in used:
            continue
        for j2 in range(j + 1, len(matrix)):
            other = matrix[j2]
            if j2 in used or any(abs(a) != abs(c) for a, c in zip(row, other)):
                continue
            same = [k for k, c in enumerate(row) if c != 0 and other[k] == c]
            if 0 < len(same) < sum(c != 0 for c in row):  # some terms agree, the others flip sign
                rows.append((j, j2, same))
                used.add(j2)
                break
        else:
            rows.append((j, None, None))
    return rows


_BT_ROWS = _sign_pairs(winograd.BT.tolist())
_AT_COLUMNS = _sign_pairs(winograd.AT.T.tolist())  # 0, (1, 2), (3, 4), (5, 6), 7
_BT_EVEN_INPUTS = sorted({k for _, pair, same in _BT_ROWS if pair is not None for k in same})  # 2, 4, 6


@intrinsic
def winograd_input_vector(typingctx, block, src, s, step, v, d, vstep):
    """v.flat[d + j * vstep:][:lanes] = sum_k BT[j, k] src.flat[s + k * step:][:lanes], j, k < 8.

    The input transform of one Winograd tile (srcnn_np.cpu.winograd), `lanes` channels at a time:
    17 loads, 8 stores, and 30 adds and multiply-adds: rows of the points +-a are the sum and the
    difference of one even and one odd part (_sign_pairs), instead of 44 loads and multiply-adds
    (fused conv2 + conv3 in 0.93x the time on Zen 3).
    """
    _check_c_float32(src)
    _check_c_float32(v)

    def codegen(context, builder, sig, args):
        e = _Emitter(context, builder, sig.args[0].shape)
        _, src_v, s_v, step_v, v_v, d_v, vstep_v = args
        at = [s_v]
        for _k in range(1, winograd.POINTS):
            at.append(builder.add(at[-1], step_v))
        bt = winograd.BT.tolist()
        coef = _coefficient_vectors(e, builder, _opaque_table(builder, "srcnn_np_winograd_BT", bt), bt)

        # The inputs that every even part reads are loaded once; the others where used (kept in
        # registers too, they spill: the stores to v in between keep LLVM from merging the loads).
        kept = {k: e.load(sig.args[1], src_v, at[k]) for k in _BT_EVEN_INPUTS}

        def load(k):
            return kept[k] if k in kept else e.load(sig.args[1], src_v, at[k])

        def part(j, columns):
            return _linear_combination(builder, e, [bt[j][k] if k in columns else 0.0 for k in range(len(at))],
                                       load, lambda k, j=j: coef(j, k))

        def store(j, value):
            e.store(value, sig.args[4], v_v, builder.add(d_v, builder.mul(vstep_v, ir.Constant(vstep_v.type, j))))

        for j, j2, same in _BT_ROWS:
            if j2 is None:
                store(j, part(j, range(len(at))))
            else:
                even, odd = part(j, same), part(j, [k for k in range(len(at)) if k not in same])
                store(j, builder.fadd(even, odd))
                store(j2, builder.fsub(even, odd))
        return context.get_dummy_value()

    return types.none(block, src, s, step, v, d, vstep), codegen


@intrinsic
def winograd_output_vector(typingctx, block, m, s, mstep, b, bo, dst, d, dstep, lo, hi, relu):
    """dst.flat[d + i * dstep:][:lanes] = b.flat[bo:][:lanes] + sum_j AT[i, j] m.flat[s + j * mstep:][:lanes]
    for lo <= i < hi (i < 4, j < 8; max(., 0) if relu, NaN kept): the output transform of one tile.
    The columns of the points +-a come as their sum and difference (_sign_pairs of AT's columns):
    8 loads and 16 adds and multiply-adds for the 4 rows, instead of 22 of each."""
    _check_c_float32(m)
    _check_c_float32(b)
    _check_c_float32(dst)

    def codegen(context, builder, sig, args):
        e = _Emitter(context, builder, sig.args[0].shape)
        _, m_v, s_v, mstep_v, b_v, bo_v, dst_v, d_v, dstep_v, lo_v, hi_v, relu_v = args
        at = [s_v]
        for _j in range(1, winograd.POINTS):
            at.append(builder.add(at[-1], mstep_v))
        zero = ir.Constant(e.vec, [0.0] * e.shape.lanes)
        table = _opaque_table(builder, "srcnn_np_winograd_AT", winograd.AT)
        x = [e.load(sig.args[1], m_v, a) for a in at]
        terms = {}  # (i, j) -> the vector that AT[i, j] multiplies in row i
        for j, j2, same in _AT_COLUMNS:
            if j2 is None:
                terms.update({(i, j): x[j] for i in range(len(winograd.AT))})
            else:
                plus, minus = builder.fadd(x[j], x[j2]), builder.fsub(x[j], x[j2])
                terms.update({(i, j): plus if i in same else minus for i in range(len(winograd.AT))})
        out = d_v
        for i, row in enumerate(winograd.AT.tolist()):
            i_v = ir.Constant(lo_v.type, i)
            inside = builder.and_(builder.icmp_signed("<=", lo_v, i_v), builder.icmp_signed(">", hi_v, i_v))
            with builder.if_then(inside):  # (coefficients loaded in the block that uses them)
                coef = _coefficient_vectors(e, builder, table, winograd.AT)
                paired = [0.0 if (i, j) not in terms else c for j, c in enumerate(row)]  # a pair's second column: 0
                y = builder.fadd(e.load(sig.args[4], b_v, bo_v),
                                 _linear_combination(builder, e, paired, lambda j, i=i: terms[i, j],
                                                     lambda j, i=i: coef(i, j)))
                clipped = builder.select(builder.fcmp_ordered("<", y, zero), zero, y)
                e.store(builder.select(relu_v, clipped, y), sig.args[6], dst_v, out)
            out = builder.add(out, dstep_v)
        return context.get_dummy_value()

    return types.none(block, m, s, mstep, b, bo, dst, d, dstep, lo, hi, types.boolean), codegen
