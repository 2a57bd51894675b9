"""srcnn_np against the torch reference, same inputs, same process, same thread count.

Run (not part of the normal test run):
    flock /tmp/srcnn_cpu.lock python -m pytest benchmarks/ --benchmark-enable
or `python benchmarks/report.py` for the table and the bar chart. SRCNN_BENCH_THREADS sets the
thread count of both (default 2), SRCNN_BENCH_SIZES the input sides (default "256,512,1024").
The CPU kernels' register-block variant is this machine's unless SRCNN_NP_CPU_VARIANT forces one
(with NUMBA_CPU_NAME and NUMBA_CPU_FEATURES="" to compile for another CPU; report.py --variants
sets them); each entry records the variant, Numba's target CPU and torch's CPU capability.

Each benchmark group is one stage at one input size, holding an srcnn_np and a torch entry.
Stages: bicubic, conv1 (+ReLU), conv2 (+ReLU), conv3 as the separate kernels forward_stages runs;
conv2+3 the fused kernel the model runs; model the whole network (srcnn_forward, default tiling).
Both are warmed up (Numba compiles or loads its cache, torch plans its convolutions) before timing.
"""
import os
from functools import lru_cache

import numba
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reference.model import SRCNN
from srcnn_np.cpu import isa, kernels, winograd
from srcnn_np.model import KernelWeights, srcnn_forward, upscale
from srcnn_np.weights import Weights

THREADS = int(os.environ.get("SRCNN_BENCH_THREADS", "2"))
SIZES = [int(s) for s in os.environ.get("SRCNN_BENCH_SIZES", "256,512,1024").split(",")]
SCALE = 2
# multiply-adds per output pixel of each stage (bicubic: 8, negligible, reported without GFLOP/s)
MACS_PER_PIXEL = {"conv1": 9 * 9 * 64, "conv2": 5 * 5 * 64 * 32, "conv3": 5 * 5 * 32,
                  "conv2+3": 5 * 5 * 64 * 32 + 5 * 5 * 32, "model": 9 * 9 * 64 + 5 * 5 * 64 * 32 + 5 * 5 * 32}
STAGES = ["bicubic", "conv1", "conv2", "conv3", "conv2+3", "model"]

torch.set_num_threads(THREADS)
numba.set_num_threads(THREADS)


@lru_cache(maxsize=1)
def nets():
    torch.manual_seed(0)
    net = SRCNN(SCALE).eval()
    w = Weights.from_arrays({k: v.detach().numpy() for k, v in net.state_dict().items()}, SCALE)
    return net, KernelWeights.from_weights(w)


@lru_cache(maxsize=1)
def stage_inputs(size: int) -> dict:
    """Every stage's input for a (size, size) gray image, in both layouts."""
    net, _ = nets()
    lr = np.random.default_rng(size).random((size, size), dtype=np.float32)
    s = size * SCALE
    with torch.no_grad():
        x = torch.from_numpy(lr)[None, None]
        up = net.upsample(x)
        c1 = F.relu(net.conv1(up))
        c2 = F.relu(net.conv2(c1))
    maps = {"upsampled": kernels.padded_map(s, s, 1, 4), "conv1": kernels.padded_map(s, s, 64, 2),
            "conv2": kernels.padded_map(s, s, 32, 2), "output": np.empty((s, s), np.float32)}
    maps["upsampled"][4:4 + s, 4:4 + s, 0] = up[0, 0].numpy()
    maps["conv1"][2:2 + s, 2:2 + s] = c1[0].permute(1, 2, 0).numpy()
    maps["conv2"][2:2 + s, 2:2 + s] = c2[0].permute(1, 2, 0).numpy()
    return {"lr": lr, "x": x, "up": up, "c1": c1, "c2": c2, "maps": maps}


def srcnn_np_stage(stage: str, size: int):
    _, kw = nets()
    d = stage_inputs(size)
    m, s = d["maps"], size * SCALE
    return {
        "bicubic": lambda: kernels.bicubic_upsample(d["lr"], SCALE),
        "conv1": lambda: kernels.conv_relu_into(m["upsampled"], kw.w1, kw.b1, s, True, m["conv1"], 2),
        "conv2": lambda: kernels.conv_relu_into(m["conv1"], kw.w2, kw.b2, s, True, m["conv2"], 2),
        "conv3": lambda: kernels.conv_single_out_into(m["conv2"], kw.w3, kw.b3, s, m["output"]),
        "conv2+3": lambda: kernels.conv_relu_then_single_out_into(m["conv1"], kw.w2, kw.b2, kw.w3, kw.b3, s,
                                                                  m["output"], THREADS),
        "model": lambda: srcnn_forward(d["lr"], kw),
    }[stage]


def torch_stage(stage: str, size: int):
    net, _ = nets()
    d = stage_inputs(size)

    def no_grad(f):
        def run():
            with torch.no_grad():
                return f()
        return run

    return no_grad({
        "bicubic": lambda: net.upsample(d["x"]),
        "conv1": lambda: F.relu(net.conv1(d["up"])),
        "conv2": lambda: F.relu(net.conv2(d["c1"])),
        "conv3": lambda: net.conv3(d["c2"]),
        "conv2+3": lambda: net.conv3(F.relu(net.conv2(d["c1"]))),
        "model": lambda: net(d["x"]),
    }[stage])


def macs_done_per_pixel(stage: str) -> float:
    """Multiply-adds per output pixel that srcnn_np's algorithms do (conv2 by Winograd, at
    winograd.MULTIPLY_ADD_RATIO of the direct conv's): what "% of peak" in report.py counts."""
    saved = (1 - winograd.MULTIPLY_ADD_RATIO) * MACS_PER_PIXEL["conv2"]
    return MACS_PER_PIXEL.get(stage, 0) - (saved if stage in ("conv2", "conv2+3", "model") else 0)


def run(benchmark, fn, impl, stage, size, colour, macs_per_pixel):
    fn()  # warm-up: compile or load the Numba cache, let torch pick its kernels
    rounds = 3 if size >= 1024 else 5
    pixels = (size * SCALE) ** 2 * (3 if colour == "rgb" else 1)
    flop = 2.0 * macs_per_pixel * pixels
    done = 2.0 * macs_done_per_pixel(stage) * pixels if impl == "srcnn_np" else flop
    benchmark.extra_info.update(impl=impl, stage=stage, size=size, colour=colour, threads=THREADS, flop=flop,
                                flop_done=done,
                                variant=isa.BLOCK.name, target_cpu=isa.target_cpu()[0],
                                torch_cpu=torch.backends.cpu.get_cpu_capability())
    benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("impl", ["srcnn_np", "torch"])
@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("size", SIZES)
def test_gray(benchmark, size, stage, impl):
    benchmark.group = f"{stage} gray {size}x{size}"
    fn = srcnn_np_stage(stage, size) if impl == "srcnn_np" else torch_stage(stage, size)
    run(benchmark, fn, impl, stage, size, "gray", MACS_PER_PIXEL.get(stage, 0))


@pytest.mark.parametrize("impl", ["srcnn_np", "torch"])
@pytest.mark.parametrize("size", SIZES)
def test_rgb_model(benchmark, size, impl):
    """The whole model on the three channels of an RGB image (mode="rgb")."""
    benchmark.group = f"model rgb {size}x{size}"
    net, kw = nets()
    rgb = np.random.default_rng(size + 1).random((size, size, 3), dtype=np.float32)
    if impl == "srcnn_np":
        def fn():
            return upscale(rgb, kw, mode="rgb")
    else:
        x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[:, None]

        def fn():
            with torch.no_grad():
                return net(x).clamp_(0, 1)
    run(benchmark, fn, impl, "model", size, "rgb", MACS_PER_PIXEL["model"])
