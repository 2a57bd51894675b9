"""Experiment: register blockings for conv1 (9x9, 1 -> 64 channels + ReLU), timed side by side.

Run: python dev/conv1_blocking.py [SIDE]      (default 1024: conv1 of an x2 512x512 input)

conv1 has one input channel, so the generic direct kernel (kernels.conv_relu_row) runs its
channel loop once per tap: the loop and address arithmetic around each tap's 12 FMAs (AVX2 block)
cost about as much as the FMAs (41% of peak in issue 26). Candidates, each built from the
kernels' register-block intrinsics for this CPU's variant and checked bit for bit against the
shipped kernel before it is timed:

- kx_c_loops:  the kernel before: loops over kx, then c (once for conv1), around each tap.
- fused_taps:  the (kx, c) loops of a kernel row fused into one loop over kx * Cin + c (src and
               weight offsets are both linear in it), for any Cin: 9 steps a kernel row for conv1.
               Now shipped: kernels.conv_relu_rows, the model's kernel, is timed under this name.
- wide_block:  the shipped kernel compiled (kernels.conv_kernels) for a block of fewer pixels and
               more channels (avx2: 3 px x 4 vectors; avx512: 4 px x 4 vectors), so that each
               broadcast input feeds more FMAs.

Result (2-core AMD EPYC Zen 3 VM, AVX2, 2 threads, side 1024, median of 7; the machine was loaded
with about 14 runnable processes, so only the ratios mean anything), two runs:

    kx_c_loops  1.00x          1.00x
    fused_taps  0.60x          0.77x       <- shipped
    wide_block  1.13x          1.45x       (3 px x 4 vectors: 12 accumulators + 4 weights + 1 > 16 ymm)
"""
import sys
import time

import numba
import numpy as np
from numba import njit

import srcnn_np
from srcnn_np.config import JIT_OPTIONS
from srcnn_np.cpu import isa, kernels, threads
from srcnn_np.cpu.simd import block_bias, block_channels, block_fma_broadcast, block_pixels, block_store
from srcnn_np.model import KernelWeights

WIDE = {"avx512": isa.BlockShape("avx512w", pixels=4, vectors=4, lanes=16),
        "avx2": isa.BlockShape("avx2w", pixels=3, vectors=4, lanes=8),
        "lanes4": isa.BlockShape("lanes4w", pixels=2, vectors=4, lanes=4)}


def kx_c_loops_kernel(BLOCK):
    @njit(**JIT_OPTIONS)
    def rows(src, w, b, width, relu, dst, dst_pad, r0, r1):
        K = w.shape[0]
        Cin = w.shape[2]
        Cout = w.shape[3]
        Ws = src.shape[1]
        Wd = dst.shape[1]
        P = block_pixels(BLOCK)
        for y in range(r0, r1):
            for g in range(0, Cout, block_channels(BLOCK)):
                for x in range(0, width, P):
                    x0 = min(x, max(width - P, 0))
                    acc = block_bias(BLOCK, b, g)
                    for ky in range(K):
                        for kx in range(K):
                            s = ((y + ky) * Ws + x0 + kx) * Cin
                            t = (ky * K + kx) * Cin * Cout + g
                            for c in range(Cin):
                                acc = block_fma_broadcast(acc, src, s + c, Cin, w, t + c * Cout)
                    block_store(acc, dst, ((dst_pad + y) * Wd + dst_pad + x0) * Cout + g, Cout,
                                min(P, width - x0), relu)
    return rows


def main(side: int) -> None:
    kw = KernelWeights.from_weights(srcnn_np.load_weights(None, scale=2))
    up = kernels.padded_map(side, side, 1, 4)
    up[4:4 + side, 4:4 + side, 0] = np.random.default_rng(0).random((side, side), dtype=np.float32)
    out = {}
    candidates = {"kx_c_loops": kx_c_loops_kernel(isa.BLOCK), "fused_taps": kernels.conv_relu_rows,
                  "wide_block": kernels.conv_kernels(WIDE[isa.BLOCK.name]).conv_relu_rows}
    for name, k in candidates.items():
        dst = kernels.padded_map(side, side, 64, 2)
        threads.run_bands(k, side, (up, kw.w1, kw.b1, side, True, dst, 2), bands_per_thread=4)
        out[name] = dst
    for name in candidates:
        same = np.array_equal(out[name], out["fused_taps"])
        print(f"{name:11} bits equal to fused_taps: {same}"
              + ("" if same else f" (max diff {np.abs(out[name] - out['fused_taps']).max():.2e})"))
    times = {name: [] for name in candidates}
    for _ in range(7):
        for name, k in candidates.items():
            t0 = time.perf_counter()
            threads.run_bands(k, side, (up, kw.w1, kw.b1, side, True, out[name], 2), bands_per_thread=4)
            times[name].append(time.perf_counter() - t0)
    flop = 2 * 81 * 64 * side * side
    base = np.median(times["kx_c_loops"])
    print(f"variant {isa.BLOCK.name}, side {side}, threads {numba.get_num_threads()}")
    for name, ts in times.items():
        m = np.median(ts)
        print(f"{name:11} {m:.4f} s  {flop / m / 1e9:6.1f} GFLOP/s  {m / base:.2f}x kx_c_loops")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1024)
