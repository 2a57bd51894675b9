"""The CUDA path (srcnn_np.gpu.runner) against the CPU path, in numba's CUDA simulator.

Run on their own, with the simulator on before numba.cuda is first imported:

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/test_cuda_sim.py

Without NUMBA_ENABLE_CUDASIM=1 the simulator tests skip. The simulator runs every CUDA thread
as a Python thread, so the images are tiny; the network is the real one (64 and 32 channels).
Threads per block are patched small so tiny images still span several blocks with a partial
last one, and tiles are forced small so tile borders are crossed. The cuda_status tests run
anywhere: each runs in a subprocess with its own environment.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numba.core import config

from srcnn_np.gpu import runner as srcnn_cuda
from srcnn_np.cpu.kernels import bicubic_upsample, cubic_taps
from srcnn_np.model import KernelWeights, srcnn_forward

from .checks import assert_close
from .conftest import BICUBIC_TOL, PARITY_TOL, random_weights

REPO = Path(__file__).resolve().parents[1]
needs_simulator = pytest.mark.skipif(
    not config.ENABLE_CUDASIM,
    reason="needs numba's CUDA simulator: NUMBA_ENABLE_CUDASIM=1 python -m pytest "
           "tests/test_cuda_sim.py")


def kernel_weights(seed: int, scale: int) -> KernelWeights:
    return KernelWeights.from_weights(random_weights(seed, scale))


# (H, W, scale, output tile edge or None for the default, threads per block (x, y))
FORWARD_CASES = [
    (1, 1, 2, None, (4, 4)),
    (1, 1, 2, 1, (4, 4)),  # one-pixel tiles: every window overhangs the image on all sides
    (1, 5, 3, 4, (2, 8)),  # 4 tiles along a 3-row image; blocks taller than the image
    (7, 13, 2, 9, (4, 4)),  # 2 x 3 tiles, odd tile edge, partial last tiles and blocks
    (12, 9, 3, 16, (16, 16)),  # 3 x 2 tiles whose low-res slices start past row and column 0;
                               # the default blocks, partial last blocks
]


@needs_simulator
@pytest.mark.parametrize("H, W, scale, tile, block", FORWARD_CASES,
                         ids=[f"{h}x{w}-x{s}-tile{t}-block{b[0]}x{b[1]}"
                              for h, w, s, t, b in FORWARD_CASES])
def test_forward_matches_cpu(monkeypatch, H, W, scale, tile, block):
    monkeypatch.setattr(srcnn_cuda, "THREADS_PER_BLOCK", block)
    kw = kernel_weights(H * 100 + W, scale)
    lr = np.random.default_rng(H * W).random((H, W), dtype=np.float32)
    expected = srcnn_forward(lr, kw)
    assert np.abs(expected).max() > 100 * PARITY_TOL, f"degenerate test: CPU output {expected}"
    actual = srcnn_cuda.srcnn_forward_cuda(lr, kw, tile=tile)
    assert actual.dtype == np.float32
    assert_close(f"CUDA vs CPU forward, {H}x{W} x{scale} tile {tile}", actual, expected, PARITY_TOL,
                 key="cuda simulator vs cpu forward")


@needs_simulator
def test_upscale_rgba_on_device_cuda_matches_cpu(monkeypatch):
    """upscale(device="cuda") through the colour handling; alpha stays bicubic either way."""
    from srcnn_np import upscale

    monkeypatch.setattr(srcnn_cuda, "THREADS_PER_BLOCK", (4, 4))
    image = (np.random.default_rng(3).random((3, 4, 4)) * 255).astype(np.uint8)
    weights = random_weights(8)
    assert_close("upscale RGBA cuda vs cpu", upscale(image, weights, device="cuda"),
                 upscale(image, weights, device="cpu"), PARITY_TOL, key="cuda simulator vs cpu forward")


@needs_simulator
@pytest.mark.parametrize("oy0, ox0, ly0, lx0", [(-3, -2, 0, 0), (9, 10, 1, 2)],
                         ids=["overhanging-top-left", "low-res-slice"])
def test_bicubic_tile_matches_cpu_and_zero_pads(oy0, ox0, ly0, lx0):
    """A window of the upsampled image starting at (oy0, ox0), from the low-res rows ly0.. and
    columns lx0..: in-image pixels are the CPU bicubic, the rest 0."""
    from numba import cuda

    from srcnn_np.gpu.kernels import bicubic_tile

    H, W, scale, block = 5, 6, 3, (4, 4)
    lr = np.random.default_rng(3).random((H, W), dtype=np.float32)
    up = bicubic_upsample(lr, scale)
    expected = np.zeros((H * scale + 5, W * scale + 6), dtype=np.float32)
    ys = np.arange(expected.shape[0]) + oy0
    xs = np.arange(expected.shape[1]) + ox0
    inside_y, inside_x = (ys >= 0) & (ys < H * scale), (xs >= 0) & (xs < W * scale)
    expected[np.ix_(inside_y, inside_x)] = up[np.ix_(ys[inside_y], xs[inside_x])]
    taps = [cuda.to_device(a) for a in (*cubic_taps(H, scale), *cubic_taps(W, scale))]
    out = cuda.device_array((1,) + expected.shape, dtype=np.float32)
    grid = (-(-expected.shape[1] // block[0]), -(-expected.shape[0] // block[1]))
    bicubic_tile[grid, block](cuda.to_device(np.ascontiguousarray(lr[ly0:, lx0:])), ly0, lx0,
                              *taps, oy0, ox0, out)
    assert_close("bicubic window vs CPU bicubic", out.copy_to_host()[0], expected, BICUBIC_TOL,
                 key="cuda simulator vs cpu bicubic")


@needs_simulator
@pytest.mark.parametrize("shape, tile", [((2, 3, 1), None), ((0, 4), None), ((2, 2), 0)])
def test_forward_rejects_bad_input(shape, tile):
    with pytest.raises(ValueError):
        srcnn_cuda.srcnn_forward_cuda(np.zeros(shape, np.float32), kernel_weights(0, 2), tile)


@needs_simulator
def test_status_in_simulator():
    usable, reason = srcnn_cuda.cuda_status()
    assert usable, reason
    assert "simulator" in reason


def ptx_compiler_available() -> bool:
    """Whether numba-cuda (what srcnn_np[cuda] installs) and its NVVM are here: they compile
    kernels to PTX without a GPU (numba's deprecated built-in CUDA target needs a driver)."""
    if config.ENABLE_CUDASIM:
        return False
    try:
        from numba import cuda
        from numba.cuda.cudadrv import nvvm

        return cuda.implementation == "NVIDIA" and nvvm.is_available()
    except ImportError:
        return False


@pytest.mark.skipif(not ptx_compiler_available(),
                    reason='needs numba-cuda with NVVM: pip install "numba-cuda[cu12]" (or [cu13])'
                           "; not under the simulator")
def test_kernels_compile_to_float32_ptx():
    """The real compiler accepts every kernel and emits no float64 arithmetic (no GPU needed)."""
    from numba import cuda, types

    from srcnn_np.gpu import kernels as cuda_kernels

    i64 = types.int64
    f32 = {n: types.Array(types.float32, n, "C") for n in (1, 2, 3)}
    taps = (types.Array(types.int64, 2, "C"), f32[2])
    kernels = {"bicubic": (cuda_kernels.bicubic_tile.py_func,
                           (f32[2], i64, i64, *taps, *taps, i64, i64, f32[3]))}
    for k, cin, cout, chunk, relu in srcnn_cuda.CONV_LAYERS:
        conv = cuda_kernels.conv_kernel(k, cin, cout, chunk, relu, srcnn_cuda.THREADS_PER_BLOCK)
        kernels[f"conv {cin}->{cout}"] = (conv.py_func, (f32[3], f32[1], f32[1], i64, i64, i64,
                                                         i64, f32[3]))
    for name, (fn, signature) in kernels.items():
        ptx, _ = cuda.compile_ptx(fn, signature, cc=(7, 5))
        f64 = [line.strip() for line in ptx.splitlines() if ".f64" in line]
        assert not f64, f"{name} kernel computes in float64: {f64[:5]}"


def test_default_tile_fits_the_memory_budget():
    free = 2 ** 30
    edge = srcnn_cuda.default_tile(free)
    budget = srcnn_cuda.TILE_MEMORY_FRACTION * free
    assert edge % srcnn_cuda.MIN_TILE == 0
    assert srcnn_cuda.tile_bytes(edge, edge) <= budget, edge
    bigger = edge + srcnn_cuda.MIN_TILE
    assert srcnn_cuda.tile_bytes(bigger, bigger) > budget, edge
    assert srcnn_cuda.default_tile(float("inf")) == srcnn_cuda.MAX_TILE
    assert srcnn_cuda.default_tile(0) == srcnn_cuda.MIN_TILE


def run_isolated(code: str) -> dict:
    """Run `code` in a fresh interpreter without the simulator and without visible GPUs;
    it prints one JSON object, returned here."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


STATUS = "import json; from srcnn_np.gpu.runner import cuda_status; " \
         "usable, reason = cuda_status(); print(json.dumps(dict(usable=usable, reason=reason)))"


def test_status_without_gpu():
    got = run_isolated(STATUS)
    assert got["usable"] is False, got
    assert got["reason"].strip() and "\n" not in got["reason"], got


def test_status_without_numba_cuda():
    got = run_isolated("import sys; sys.modules['numba.cuda'] = None; " + STATUS)
    assert got["usable"] is False, got
    assert 'pip install "srcnn_np[cuda]"' in got["reason"], got
    assert "\n" not in got["reason"], got


def test_forward_without_gpu_raises_one_line_error():
    got = run_isolated(
        "import json, numpy as np\n"
        "from srcnn_np.gpu import runner as cuda\n"
        "try:\n"
        "    cuda.srcnn_forward_cuda(np.zeros((2, 2), np.float32), None)\n"
        "    print(json.dumps(dict(error=None)))\n"
        "except cuda.CudaUnavailableError as e:\n"
        "    print(json.dumps(dict(error=str(e), reason=cuda.cuda_status()[1])))\n")
    assert got["error"] is not None, "srcnn_forward_cuda ran without a GPU"
    assert got["reason"] in got["error"] and "\n" not in got["error"], got
