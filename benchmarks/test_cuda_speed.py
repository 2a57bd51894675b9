"""srcnn_np's CUDA path against torch on CUDA: one 1024x1024 gray image, x2, float32.

Needs an NVIDIA GPU, `pip install "srcnn_np[cuda]"` and a CUDA build of torch; run with

    python -m pytest benchmarks/bench_cuda.py --benchmark-enable

Skipped where either side has no GPU, and under NUMBA_ENABLE_CUDASIM=1 (the simulator is no
GPU). Both sides go from a host array to a host array (transfers included), float32 with
TF32 off, after a warm-up round (Numba compiles its kernels, cuDNN picks its algorithms).
"""
import numpy as np
import pytest
from numba.core import config

from srcnn_np.gpu.runner import cuda_status, srcnn_forward_cuda
from srcnn_np.model import KernelWeights
from srcnn_np.weights import Weights

torch = pytest.importorskip("torch")

SIZE = 1024
SCALE = 2
SANITY_TOL = 1e-3  # both sides must compute the same network (parity proper: tests/)


def skip_reason() -> str | None:
    if config.ENABLE_CUDASIM:
        return "NUMBA_ENABLE_CUDASIM=1: the CUDA simulator is not a GPU"
    usable, reason = cuda_status()
    if not usable:
        return f"srcnn_np's CUDA path is not usable: {reason}"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    return None


SKIP_REASON = skip_reason()
pytestmark = pytest.mark.skipif(SKIP_REASON is not None, reason=str(SKIP_REASON))


@pytest.fixture(scope="module")
def setup():
    """(lr (SIZE, SIZE) float32, srcnn_np runner, torch runner), torch's default init, seed 0."""
    from reference.model import SRCNN, from_weights

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    arrays = {k: v.numpy() for k, v in SRCNN(SCALE).state_dict().items()}
    weights = Weights.from_arrays(arrays, SCALE)
    kw = KernelWeights.from_weights(weights)
    net = from_weights(weights).cuda()
    lr = np.random.default_rng(SIZE).random((SIZE, SIZE), dtype=np.float32)

    def run_srcnn_np():
        return srcnn_forward_cuda(lr, kw)

    def run_torch():
        with torch.no_grad():
            return net(torch.from_numpy(lr)[None, None].cuda())[0, 0].cpu().numpy()

    diff = float(np.abs(run_srcnn_np() - run_torch()).max())
    assert diff <= SANITY_TOL, f"srcnn_np CUDA vs torch CUDA: max abs diff {diff:.3e}"
    return {"srcnn_np": run_srcnn_np, "torch": run_torch, "max_abs_diff": diff}


@pytest.mark.parametrize("impl", ["srcnn_np", "torch"])
def test_cuda_model(benchmark, setup, impl):
    benchmark.group = f"model gray {SIZE}x{SIZE} x{SCALE} on CUDA"
    benchmark.extra_info.update(impl=impl, size=SIZE, device=cuda_status()[1],
                                max_abs_diff=setup["max_abs_diff"])
    benchmark.pedantic(setup[impl], rounds=5, iterations=1, warmup_rounds=1)
