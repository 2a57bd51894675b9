"""srcnn_np's CUDA path against torch on CUDA: gray images of SIZES, x2, float32, plus device times.

Needs an NVIDIA GPU and `pip install "srcnn_np[cuda]"`; the torch side needs a CUDA build of
torch (without one, only srcnn_np is timed). Run with

    python -m pytest benchmarks/test_cuda_speed.py --benchmark-enable

(tools/gpu_check.py runs it with everything else a GPU session should check.) Everything skips
without a usable GPU, and under NUMBA_ENABLE_CUDASIM=1 (the simulator is no GPU).

test_host_to_host: host array to host array (transfers included), srcnn_np against torch fp32
(TF32 off) and torch TF32, cuDNN's benchmark mode on, after a warm-up round (srcnn_np loads or
compiles its kernels, cuDNN picks its algorithms). test_device_time: device milliseconds from
CUDA events, srcnn_np per stage (upload, bicubic, conv1..3, download) and torch fp32's forward
on a device tensor, in extra_info (see the JSON of --benchmark-json).
"""
import numpy as np
import pytest
from numba.core import config

from srcnn_np.gpu.runner import CudaRunner, cuda_status
from srcnn_np.model import KernelWeights
from srcnn_np.weights import load_weights

try:
    import torch
except ImportError:
    torch = None

SIZES = (256, 1024, 2048)
SCALE = 2
SANITY_TOL = 1e-3  # both sides must compute the same network (parity proper: tests/, tools/gpu_check.py)
MODEL_MACS = 81 * 64 + 64 * 25 * 32 + 32 * 25  # multiply-adds per output pixel
CONV2_MACS = 64 * 25 * 32  # per pixel of conv2's output window
# extra_info keys benchmarks/report.py reads: stage, colour, threads, flop, impl ("torch" = fp32)
REPORT_INFO = dict(stage="cuda", colour="gray", threads="gpu")


def skip_reason() -> str | None:
    if config.ENABLE_CUDASIM:
        return "NUMBA_ENABLE_CUDASIM=1: the CUDA simulator is not a GPU"
    usable, reason = cuda_status()
    return None if usable else f"srcnn_np's CUDA path is not usable: {reason}"


def torch_skip_reason() -> str | None:
    if torch is None:
        return "torch is not installed"
    return None if torch.cuda.is_available() else "torch sees no CUDA device (a CPU build?)"


SKIP_REASON = skip_reason()
pytestmark = pytest.mark.skipif(SKIP_REASON is not None, reason=str(SKIP_REASON))


@pytest.fixture(scope="module")
def kw() -> KernelWeights:
    return KernelWeights.from_weights(load_weights(scale=SCALE))


@pytest.fixture(scope="module")
def runner(kw) -> CudaRunner:
    return CudaRunner(kw)


def image(size: int) -> np.ndarray:
    return np.random.default_rng(size).random((size, size), dtype=np.float32)


def torch_net(tf32: bool):
    """The reference network with the shipped weights on the GPU, TF32 on or off."""
    from reference.model import from_weights

    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True
    return from_weights(load_weights(scale=SCALE)).cuda().eval()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("impl", ["srcnn_np", "torch", "torch_tf32"])
def test_host_to_host(benchmark, runner, impl, size):
    lr = image(size)
    if impl == "srcnn_np":
        def run():
            return runner(lr)
    else:
        if torch_skip_reason():
            pytest.skip(torch_skip_reason())
        net = torch_net(tf32=impl == "torch_tf32")

        def run():
            with torch.no_grad():
                return net(torch.from_numpy(lr)[None, None].cuda())[0, 0].cpu().numpy()

        diff = float(np.abs(run() - runner(lr)).max())
        assert diff <= SANITY_TOL or impl == "torch_tf32", f"srcnn_np vs {impl}: max abs diff {diff:.3e}"
        benchmark.extra_info["max_abs_diff_vs_srcnn_np"] = diff
    benchmark.group = f"model gray {size}x{size} x{SCALE} on CUDA, host to host"
    benchmark.extra_info.update(REPORT_INFO, impl=impl, size=size, device=cuda_status()[1],
                                flop=2 * MODEL_MACS * (SCALE * size) ** 2)
    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("size", SIZES)
def test_device_time(benchmark, runner, size):
    """Device milliseconds per stage of srcnn_np (CUDA events; median of 5 calls), conv2's
    TFLOP/s, and torch fp32's forward on a device tensor (events) for comparison."""
    lr = image(size)
    runner(lr)  # warm-up: kernels loaded, buffers allocated
    per_call = []
    for _ in range(5):
        timings = {}
        runner(lr, timings)
        per_call.append(timings)
    stages = {name: float(np.median([t[name] for t in per_call])) for name in per_call[0]}
    kernels_ms = sum(ms for name, ms in stages.items() if name not in ("upload", "download"))
    conv2_pixels = sum((t.th + 4) * (t.tw + 4) for t in runner.last_plan)  # conv2's output windows
    info = dict(REPORT_INFO, impl="srcnn_np", size=size, flop=None, device=cuda_status()[1],
                stage_ms=stages, kernels_ms=kernels_ms,
                tiles=len(runner.last_plan),
                conv2_tflops=2 * CONV2_MACS * conv2_pixels / (stages["conv2"] * 1e-3) / 1e12)
    if not torch_skip_reason():
        net = torch_net(tf32=False)
        x = torch.from_numpy(lr)[None, None].cuda()
        times = []
        with torch.no_grad():
            net(x)
            for _ in range(5):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                net(x)
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end))
        info["torch_fp32_device_ms"] = float(np.median(times))
        info["kernels_over_torch_fp32"] = kernels_ms / info["torch_fp32_device_ms"]
    benchmark.group = f"device time gray {size}x{size} x{SCALE}"
    benchmark.extra_info.update(info)
    benchmark.pedantic(lambda: runner(lr), rounds=1, iterations=1)
