"""Experiment: direct convolution variants for conv2 (64 -> 32, 5x5), channels-last, in Numba.

Every variant is checked against numpy (einsum over the padded input) before it is timed.
Run: flock /tmp/srcnn_cpu.lock python dev/conv2_variants.py [H W]   (default 256 x 1024)

Findings (2-core AVX-512 Xeon, 2 threads, 128 x 1024 map; the machine was shared, so compare
only within one run):
- plain loops with an (8, 32) accumulator array (heap or a stack alloca): 12-20 GFLOP/s; LLVM
  keeps the accumulators in memory (and vectorises the stack version with gathers/scatters).
- a row accumulator (W, 32) updated with 8 input channels folded per update (rowacc_c8):
  98 GFLOP/s on a quiet machine; it only uses ymm registers (LLVM prefers 256-bit vectors on
  this CPU) and forcing -prefer-256-bit made the auto-vectoriser worse (30 GFLOP/s).
- explicit <16 x float> LLVM vectors through Numba intrinsics (dev/simd.py), 8 pixels x 32
  channels = 16 zmm accumulators (simd_8x32): 2.7x rowacc_c8 in the same run; this is what
  srcnn_np/cpu/kernels.py ships (~280-320 GFLOP/s for conv2 at 1024 x 1024, benchmarks/report.py).
Some variants are commented out of `variants` below to keep a run short.
"""
import sys
import time

import numpy as np
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.numpy_support import carray

FM = {"nsz", "arcp", "contract", "afn", "reassoc"}
OPTS = dict(nogil=True, fastmath=FM, error_model="numpy", parallel=True)


@njit(**OPTS)
def conv_heap_acc(xp, w, b, out, PIX):
    """acc (PIX, 32) per block, heap-allocated; out (H, W, 32)."""
    H, W, CO = out.shape
    K = w.shape[0]
    CI = w.shape[2]
    nblk = W // PIX
    for y in prange(H):
        acc = np.empty((PIX, 32), dtype=np.float32)
        for bx in range(nblk):
            x0 = bx * PIX
            for p in range(PIX):
                for o in range(32):
                    acc[p, o] = b[o]
            for dy in range(K):
                for dx in range(K):
                    for c in range(CI):
                        for p in range(PIX):
                            v = xp[y + dy, x0 + p + dx, c]
                            for o in range(32):
                                acc[p, o] += v * w[dy, dx, c, o]
            for p in range(PIX):
                for o in range(32):
                    out[y, x0 + p, o] = max(acc[p, o], np.float32(0.0))
    return out


@njit(**OPTS)
def conv_heap_acc8(xp, w, b, out):
    """Same with literal 8 pixels."""
    H, W, CO = out.shape
    K = w.shape[0]
    CI = w.shape[2]
    nblk = W // 8
    for y in prange(H):
        acc = np.empty((8, 32), dtype=np.float32)
        for bx in range(nblk):
            x0 = bx * 8
            for p in range(8):
                for o in range(32):
                    acc[p, o] = b[o]
            for dy in range(K):
                for dx in range(K):
                    for c in range(CI):
                        for p in range(8):
                            v = xp[y + dy, x0 + p + dx, c]
                            for o in range(32):
                                acc[p, o] += v * w[dy, dx, c, o]
            for p in range(8):
                for o in range(32):
                    out[y, x0 + p, o] = max(acc[p, o], np.float32(0.0))
    return out


@njit(**OPTS)
def conv_flat_w(xp, w, b, out):
    """Weights flattened to (K*K*CI, 32), taps index (dy, dx, c) in one loop; literal 8 x 32."""
    H, W, CO = out.shape
    K = int(np.sqrt(w.shape[0] // xp.shape[2]) + 0.5)
    CI = xp.shape[2]
    nblk = W // 8
    for y in prange(H):
        acc = np.empty((8, 32), dtype=np.float32)
        for bx in range(nblk):
            x0 = bx * 8
            for p in range(8):
                for o in range(32):
                    acc[p, o] = b[o]
            for dy in range(K):
                row = xp[y + dy]
                for dx in range(K):
                    t0 = (dy * K + dx) * CI
                    for c in range(CI):
                        wv = w[t0 + c]
                        for p in range(8):
                            v = row[x0 + p + dx, c]
                            for o in range(32):
                                acc[p, o] += v * wv[o]
            for p in range(8):
                for o in range(32):
                    out[y, x0 + p, o] = max(acc[p, o], np.float32(0.0))
    return out


@intrinsic
def _stack_f32x256(typingctx):
    """Pointer to 256 float32 on the stack (an alloca in the function's entry block)."""
    def codegen(context, builder, signature, args):
        ty = context.get_value_type(types.float32)
        return cgutils.alloca_once(builder, ty, size=256)
    return types.CPointer(types.float32)(), codegen


@njit(inline="always")
def stack_acc():
    return carray(_stack_f32x256(), (8, 32))


@njit(**OPTS)
def conv_stack_acc(xp, w, b, out):
    """acc (8, 32) on the stack: LLVM can keep it in registers."""
    H, W, CO = out.shape
    K = w.shape[0]
    CI = w.shape[2]
    nblk = W // 8
    for y in prange(H):
        acc = stack_acc()
        for bx in range(nblk):
            x0 = bx * 8
            for p in range(8):
                for o in range(32):
                    acc[p, o] = b[o]
            for dy in range(K):
                for dx in range(K):
                    for c in range(CI):
                        for p in range(8):
                            v = xp[y + dy, x0 + p + dx, c]
                            for o in range(32):
                                acc[p, o] += v * w[dy, dx, c, o]
            for p in range(8):
                for o in range(32):
                    out[y, x0 + p, o] = max(acc[p, o], np.float32(0.0))
    return out


@njit(**OPTS)
def conv_rowacc_c8(xp, w, b, out):
    """acc (W, 32) per row in memory, 8 input channels folded per acc update."""
    H, W, CO = out.shape
    K = w.shape[0]
    CI = w.shape[2]
    for y in prange(H):
        acc = np.empty((W, 32), dtype=np.float32)
        for i in range(W):
            for o in range(32):
                acc[i, o] = b[o]
        for dy in range(K):
            row = xp[y + dy]
            for dx in range(K):
                for c in range(0, CI, 8):
                    w0 = w[dy, dx, c]
                    w1 = w[dy, dx, c + 1]
                    w2 = w[dy, dx, c + 2]
                    w3 = w[dy, dx, c + 3]
                    w4 = w[dy, dx, c + 4]
                    w5 = w[dy, dx, c + 5]
                    w6 = w[dy, dx, c + 6]
                    w7 = w[dy, dx, c + 7]
                    for i in range(W):
                        px = row[i + dx]
                        v0 = px[c]
                        v1 = px[c + 1]
                        v2 = px[c + 2]
                        v3 = px[c + 3]
                        v4 = px[c + 4]
                        v5 = px[c + 5]
                        v6 = px[c + 6]
                        v7 = px[c + 7]
                        for o in range(32):
                            acc[i, o] += (v0 * w0[o] + v1 * w1[o] + v2 * w2[o] + v3 * w3[o]
                                          + v4 * w4[o] + v5 * w5[o] + v6 * w6[o] + v7 * w7[o])
        for i in range(W):
            for o in range(32):
                out[y, i, o] = max(acc[i, o], np.float32(0.0))
    return out


@njit(**OPTS)
def conv_rowacc_c4(xp, w, b, out):
    """acc (W, 32) per row in memory, 4 input channels folded per acc update."""
    H, W, CO = out.shape
    K = w.shape[0]
    CI = w.shape[2]
    for y in prange(H):
        acc = np.empty((W, 32), dtype=np.float32)
        for i in range(W):
            for o in range(32):
                acc[i, o] = b[o]
        for dy in range(K):
            row = xp[y + dy]
            for dx in range(K):
                for c in range(0, CI, 4):
                    w0 = w[dy, dx, c]
                    w1 = w[dy, dx, c + 1]
                    w2 = w[dy, dx, c + 2]
                    w3 = w[dy, dx, c + 3]
                    for i in range(W):
                        px = row[i + dx]
                        v0 = px[c]
                        v1 = px[c + 1]
                        v2 = px[c + 2]
                        v3 = px[c + 3]
                        for o in range(32):
                            acc[i, o] += v0 * w0[o] + v1 * w1[o] + v2 * w2[o] + v3 * w3[o]
        for i in range(W):
            for o in range(32):
                out[y, i, o] = max(acc[i, o], np.float32(0.0))
    return out


@njit(**OPTS)
def conv_rowacc_c8_dx(xp, w, b, out):
    """c8 fold, but the dx loop inside so acc rows stay hot; w (K, K, CI, 32)."""
    H, W, CO = out.shape
    K = w.shape[0]
    CI = w.shape[2]
    for y in prange(H):
        acc = np.empty((W, 32), dtype=np.float32)
        for i in range(W):
            for o in range(32):
                acc[i, o] = b[o]
        for dy in range(K):
            row = xp[y + dy]
            for c in range(0, CI, 8):
                for dx in range(K):
                    w0 = w[dy, dx, c]
                    w1 = w[dy, dx, c + 1]
                    w2 = w[dy, dx, c + 2]
                    w3 = w[dy, dx, c + 3]
                    w4 = w[dy, dx, c + 4]
                    w5 = w[dy, dx, c + 5]
                    w6 = w[dy, dx, c + 6]
                    w7 = w[dy, dx, c + 7]
                    for i in range(W):
                        px = row[i + dx]
                        for o in range(32):
                            acc[i, o] += (px[c] * w0[o] + px[c + 1] * w1[o] + px[c + 2] * w2[o]
                                          + px[c + 3] * w3[o] + px[c + 4] * w4[o] + px[c + 5] * w5[o]
                                          + px[c + 6] * w6[o] + px[c + 7] * w7[o])
        for i in range(W):
            for o in range(32):
                out[y, i, o] = max(acc[i, o], np.float32(0.0))
    return out


def reference(xp, w, b):
    K = w.shape[0]
    H = xp.shape[0] - K + 1
    W = xp.shape[1] - K + 1
    out = np.zeros((H, W, w.shape[3]), dtype=np.float64)
    for dy in range(K):
        for dx in range(K):
            out += np.einsum("hwc,co->hwo", xp[dy:dy + H, dx:dx + W].astype(np.float64), w[dy, dx])
    return np.maximum(out + b, 0)


def main():
    H, W = (int(a) for a in sys.argv[1:3]) if len(sys.argv) > 2 else (256, 1024)
    rng = np.random.default_rng(0)
    xp = rng.random((H + 4, W + 4, 64), dtype=np.float32)
    w = (rng.standard_normal((5, 5, 64, 32)) * 0.05).astype(np.float32)
    b = (rng.standard_normal(32) * 0.1).astype(np.float32)
    ref = reference(xp, w, b)
    flops = 2.0 * H * W * 64 * 32 * 25
    from simd import conv_simd_8x32
    variants = {
        "simd_8x32": lambda o: conv_simd_8x32(xp, w, b, o),
        "rowacc_c8": lambda o: conv_rowacc_c8(xp, w, b, o),
        "rowacc_c4": lambda o: conv_rowacc_c4(xp, w, b, o),
        "rowacc_c8_dx": lambda o: conv_rowacc_c8_dx(xp, w, b, o),
        #"heap_acc PIX=8": lambda o: conv_heap_acc(xp, w, b, o, 8),
        #"heap_acc8": lambda o: conv_heap_acc8(xp, w, b, o),
        #"flat_w": lambda o: conv_flat_w(xp, w.reshape(-1, 32), b, o),
    }
    for name, f in variants.items():
        out = np.empty((H, W, 32), dtype=np.float32)
        f(out)
        err = np.abs(out - ref).max()
        ts = []
        for _ in range(3):
            t = time.perf_counter()
            f(out)
            ts.append(time.perf_counter() - t)
        t = min(ts)
        print(f"{name:20s} err {err:.2e}  {t*1e3:8.1f} ms  {flops / t / 1e9:6.1f} GFLOP/s")


if __name__ == "__main__":
    main()
