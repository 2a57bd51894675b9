"""Experiment: each register-block variant's conv kernels against torch, in one process, interleaved.

Run: python dev/variant_speed.py [SIZE] [THREADS]     (default: 1024 x 1024 maps, 2 threads)

Every variant runs on this CPU (a narrower block simply uses part of the registers), compiled for
this CPU: for an AVX2 machine's code use NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES="" (see
benchmarks/report.py --variants). Each kernel is first checked against torch (max abs difference
printed), then timed: minimum of 5 rounds, rounds interleaved across variants and torch so that
load from other processes hits all of them alike.
"""
import sys
import time

import numba
import numpy as np
import torch
import torch.nn.functional as F

from srcnn_np.cpu import isa, kernels

size = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
numba.set_num_threads(threads)
torch.set_num_threads(threads)
rng = np.random.default_rng(0)
w1 = rng.uniform(-1 / 9, 1 / 9, (64, 1, 9, 9)).astype(np.float32)
w2 = rng.uniform(-1 / 40, 1 / 40, (32, 64, 5, 5)).astype(np.float32)
w3 = rng.uniform(-1 / 28, 1 / 28, (1, 32, 5, 5)).astype(np.float32)
b1, b2, b3 = (rng.uniform(-0.1, 0.1, n).astype(np.float32) for n in (64, 32, 1))
hwio = [np.ascontiguousarray(w.transpose(2, 3, 1, 0)) for w in (w1, w2, w3)]
up = rng.random((size, size), dtype=np.float32)
with torch.no_grad():
    t_up = torch.from_numpy(up)[None, None]
    t_c1 = F.relu(F.conv2d(t_up, torch.from_numpy(w1), torch.from_numpy(b1), padding=4))
    t_out = F.conv2d(F.relu(F.conv2d(t_c1, torch.from_numpy(w2), torch.from_numpy(b2), padding=2)),
                     torch.from_numpy(w3), torch.from_numpy(b3), padding=2)
src1 = kernels.padded_map(size, size, 1, 4)
src1[4:-4, 4:4 + size, 0] = up
c1 = kernels.padded_map(size, size, 64, 2)
out = np.empty((size, size), np.float32)

runs = {}
for name, block in isa.VARIANTS.items():
    def conv1(block=block):
        kernels.conv_relu_into(src1, hwio[0], b1, size, True, c1, 2, block)

    def conv23(block=block):
        kernels.conv_relu_then_single_out_into(c1, hwio[1], b2, hwio[2], b3, size, out, None, block)

    conv1()
    err1 = np.abs(c1[2:-2, 2:2 + size] - t_c1[0].permute(1, 2, 0).numpy()).max()
    c1[2:-2, 2:2 + size] = t_c1[0].permute(1, 2, 0).numpy()  # same conv2 input for every variant
    conv23()
    err = np.abs(out - t_out[0, 0].numpy()).max()
    print(f"{name}: conv1 max |diff| vs torch {err1:.2e}, conv2+3 {err:.2e}")
    assert err1 < 1e-4 and err < 1e-4
    runs[f"{name} conv1"], runs[f"{name} conv2+3"] = conv1, conv23
with torch.no_grad():
    runs["torch conv1"] = lambda: F.relu(F.conv2d(t_up, torch.from_numpy(w1), torch.from_numpy(b1), padding=4))
    runs["torch conv2+3"] = lambda: F.conv2d(F.relu(F.conv2d(t_c1, torch.from_numpy(w2), torch.from_numpy(b2),
                                                               padding=2)), torch.from_numpy(w3),
                                            torch.from_numpy(b3), padding=2)
    best = {k: np.inf for k in runs}
    for _ in range(5):
        for k, f in runs.items():
            t = time.perf_counter()
            f()
            best[k] = min(best[k], time.perf_counter() - t)
macs = {"conv1": 81 * 64, "conv2+3": 25 * 64 * 32 + 25 * 32}
for k, t in best.items():
    stage = k.split()[1]
    print(f"{k:16} {t:8.4f} s {2 * macs[stage] * size * size / t / 1e9:7.1f} GFLOP/s "
          f"{t / best['torch ' + stage]:6.2f} x torch")
