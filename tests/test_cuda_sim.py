"""The CUDA path (srcnn_np.gpu) against the CPU path and naive oracles, in numba's CUDA simulator.

Run on their own, with the simulator on before numba.cuda is first imported:

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/test_cuda_sim.py

Without NUMBA_ENABLE_CUDASIM=1 the simulator tests skip. The simulator runs every CUDA thread
as a Python thread, so the images are tiny; the network is the real one (64 and 32 channels).
Threads per block are patched small so tiny images still span several blocks with a partial
last one, and tiles are forced small so tile borders are crossed. The tests of cuda_status
without a GPU, of the disk cache and of the compile notice run anywhere (the first ones in a
subprocess with its own environment); the PTX test needs numba-cuda with NVVM (no GPU).
"""
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from numba.core import config

from srcnn_np.gpu import runner as srcnn_cuda
from srcnn_np.bicubic_taps import cubic_taps
from srcnn_np.cpu.kernels import bicubic_upsample
from srcnn_np.geometry import HALO
from srcnn_np.model import KernelWeights, srcnn_forward, upscale

from . import naive
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
    (1, 1, 2, None, (4, 4)),  # one tile; every window overhangs the image on all sides
    (3, 2, 2, 3, (2, 2)),  # 2 x 2 tiles (more than STREAMS), odd tile edge, partial last tiles
    (11, 1, 2, 9, (2, 2)),  # 3 tiles down a column; the last one's low-res slice starts at row 4
    (2, 2, 3, None, (16, 8)),  # x3, the default blocks, one partial block per layer
]


@needs_simulator
@pytest.mark.parametrize("H, W, scale, tile, block", FORWARD_CASES,
                         ids=[f"{h}x{w}-x{s}-tile{t}-block{b[0]}x{b[1]}"
                              for h, w, s, t, b in FORWARD_CASES])
def test_forward_matches_cpu(monkeypatch, H, W, scale, tile, block):
    monkeypatch.setattr(srcnn_cuda, "THREADS_PER_BLOCK", block)
    kw = kernel_weights(H * 100 + W + 1, scale)
    lr = np.random.default_rng(H * W).random((H, W), dtype=np.float32)
    expected = srcnn_forward(lr, kw)
    assert np.abs(expected).max() > 100 * PARITY_TOL, f"degenerate test: CPU output {expected}"
    actual = srcnn_cuda.srcnn_forward_cuda(lr, kw, tile=tile)
    assert actual.dtype == np.float32
    assert_close(f"CUDA vs CPU forward, {H}x{W} x{scale} tile {tile}", actual, expected, PARITY_TOL,
                 key="cuda simulator vs cpu forward")


@needs_simulator
def test_runner_reuses_its_buffers_across_images(monkeypatch):
    """One runner, three images (two of one size, one smaller): right results every time from
    the same device buffers, pinned buffers and weights."""
    monkeypatch.setattr(srcnn_cuda, "THREADS_PER_BLOCK", (2, 2))
    kw = kernel_weights(5, 2)
    runner = srcnn_cuda.CudaRunner(kw, tile=2)
    rng = np.random.default_rng(5)
    held = None
    for shape in [(1, 2), (1, 2), (1, 1)]:
        lr = rng.random(shape, dtype=np.float32)
        assert_close(f"runner on {shape}", runner(lr), srcnn_forward(lr, kw), PARITY_TOL,
                     key="cuda simulator vs cpu forward")
        buffers = [id(a) for slot in runner.slots for a in
                   (*slot.stages, slot.device_lr, slot.host_lr, slot.host_out)]
        buffers += [id(layer[3]) for layer in runner.layers]
        assert held is None or buffers == held, f"buffers reallocated for {shape}"
        held = buffers
    assert len(runner.slots) == srcnn_cuda.STREAMS
    assert len({id(slot.stream) for slot in runner.slots}) == srcnn_cuda.STREAMS


@needs_simulator
def test_runner_for_keeps_one_runner_per_weights():
    kw, other = kernel_weights(6, 2), kernel_weights(7, 2)
    runner = srcnn_cuda.runner_for(kw, None)
    assert srcnn_cuda.runner_for(kw, None) is runner
    assert srcnn_cuda.runner_for(kw, 64) is not runner
    assert srcnn_cuda.runner_for(other, 64).kw is other


@needs_simulator
def test_cli_directory_keeps_one_runner(monkeypatch, tmp_path, capsys, weights_file):
    """`upscale DIR -o OUT --device cuda`: every image goes through one CudaRunner."""
    from PIL import Image

    from srcnn_np.cli import EXIT_OK, main
    from srcnn_np.weights import load_weights

    monkeypatch.setattr(srcnn_cuda, "THREADS_PER_BLOCK", (4, 4))
    made = []

    class CountedRunner(srcnn_cuda.CudaRunner):
        def __init__(self, *args):
            super().__init__(*args)
            made.append(self)

    monkeypatch.setattr(srcnn_cuda, "CudaRunner", CountedRunner)
    pixels = [np.array([[40]], np.uint8), np.array([[200]], np.uint8)]
    (tmp_path / "in").mkdir()
    for i, p in enumerate(pixels):
        Image.fromarray(p).save(tmp_path / "in" / f"{i}.png")
    assert main(["upscale", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--weights", weights_file,
                 "--device", "cuda", "--quiet"]) == EXIT_OK, capsys.readouterr().err
    assert len(made) == 1, f"{len(made)} runners for {len(pixels)} images"
    kw = KernelWeights.from_weights(load_weights(weights_file))
    for i, p in enumerate(pixels):
        with Image.open(tmp_path / "out" / f"{i}_x2.png") as im:
            got = np.asarray(im)
        want = np.rint(upscale(p, kw, device="cpu") * 255)  # the same image on the CPU (edges replicated)
        assert np.abs(got.astype(int) - want).max() <= 1, (got, want)


@needs_simulator
def test_upscale_rgba_on_device_cuda_matches_cpu(monkeypatch):
    """upscale(device="cuda") through the colour handling; alpha stays bicubic either way."""
    from srcnn_np import upscale

    monkeypatch.setattr(srcnn_cuda, "THREADS_PER_BLOCK", (4, 4))
    image = (np.random.default_rng(3).random((1, 2, 4)) * 255).astype(np.uint8)
    weights = random_weights(8)
    assert_close("upscale RGBA cuda vs cpu", upscale(image, weights, device="cuda"),
                 upscale(image, weights, device="cpu"), PARITY_TOL, key="cuda simulator vs cpu forward")


def valid_conv(inp: np.ndarray, w: np.ndarray, b: np.ndarray, relu: bool) -> np.ndarray:
    """(Cin, Hi, Wi) -> (Cout, Hi - K + 1, Wi - K + 1) float64 'valid' convolution (naive)."""
    p = w.shape[0] // 2
    same = naive.conv2d(inp.transpose(1, 2, 0), w, b, relu)  # (Hi, Wi, Cout), zero padded
    return same[p:-p, p:-p].transpose(2, 0, 1)


# (layer index, output (h, w), threads per block (x, y), window origin (oy0, ox0), image (height, width))
CONV_CASES = [
    (0, (3, 11), (2, 1), (-2, 3), (2, 12)),  # 2 x 3 blocks, partial in x; rows above the image
    (1, (3, 9), (2, 2), (1, -1), (3, 7)),  # partial blocks both ways; pixels left of and below it
    (2, (3, 19), (2, 2), (-1, -2), (9, 15)),  # 8 pixels per thread: 2 blocks across, the last partial
    (1, (2, 5), (1, 1), (0, 0), (2, 5)),  # one-thread blocks, every pixel in the image
]


@needs_simulator
@pytest.mark.parametrize("layer, out_hw, block, origin, image", CONV_CASES,
                         ids=[f"conv{c[0] + 1}-{c[1][0]}x{c[1][1]}-block{c[2][0]}x{c[2][1]}"
                              for c in CONV_CASES])
def test_conv_kernel_matches_naive(layer, out_hw, block, origin, image):
    """Each register-blocked conv kernel on its own: a window of an image at `origin`, with the
    pixels outside `image` written as 0, against a naive float64 convolution."""
    from numba import cuda

    from srcnn_np.gpu import kernels

    shape, kernel = kernels.CONV_SHAPES[layer], kernels.CONV_KERNELS[layer]
    rng = np.random.default_rng(layer)
    k = shape.K
    inp = rng.random((shape.CIN, out_hw[0] + k - 1, out_hw[1] + k - 1), dtype=np.float32)
    w = (rng.standard_normal((k, k, shape.CIN, shape.COUT)) / (k * np.sqrt(shape.CIN))).astype(np.float32)
    b = rng.uniform(-0.5, 0.2, shape.COUT).astype(np.float32)  # some outputs negative before ReLU
    expected = valid_conv(inp, w, b, shape.RELU)
    ys = np.arange(out_hw[0])[:, None] + origin[0]
    xs = np.arange(out_hw[1])[None, :] + origin[1]
    inside = (ys >= 0) & (ys < image[0]) & (xs >= 0) & (xs < image[1])
    expected = np.where(inside, expected, 0.0)
    assert 0 < inside.sum() and (not shape.RELU or (expected[:, inside] == 0).any())
    out = cuda.device_array((shape.COUT, *out_hw), dtype=np.float32)
    kernel[kernels.conv_grid(shape, out_hw, block), block, 0, kernels.shared_bytes(shape, block)](
        cuda.to_device(inp), cuda.to_device(kernels.device_weights(shape, w)), cuda.to_device(b),
        *origin, *image, out)
    assert_close(f"conv{layer + 1} kernel vs naive", out.copy_to_host(), expected, PARITY_TOL,
                 key="cuda simulator vs naive conv")


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
def test_kernels_compile_to_float32_ptx_without_local_memory(monkeypatch):
    """The real compiler accepts every kernel (no GPU needed), emits no float64 arithmetic, and
    keeps the register-blocked accumulators in registers (no .local arrays in the PTX)."""

    from numba import cuda
    from numba.cuda import dispatcher

    from srcnn_np.gpu import kernels

    if not cuda.is_available():  # numba-cuda asks the device for a compute capability when
        # it compiles a device function (conv_block); give it one, as a GPU would
        monkeypatch.setattr(dispatcher, "get_current_device",
                            lambda: SimpleNamespace(compute_capability=(7, 5)))
    for name, (kernel, signature) in kernels.SIGNATURES.items():
        ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=(7, 5))
        f64 = [line.strip() for line in ptx.splitlines() if ".f64" in line]
        assert not f64, f"{name} kernel computes in float64: {f64[:5]}"
        local = [line.strip() for line in ptx.splitlines() if ".local" in line]
        assert not local, f"{name} kernel keeps arrays in local memory: {local[:5]}"


def test_kernels_are_cached_on_disk_and_all_prepared():
    """Every kernel is a cache=True dispatcher defined at module level (no closures), so a
    second process loads it instead of compiling, and every one is in kernels.SIGNATURES, so
    cuda_status() compiles or loads it before the GPU counts as usable. (That nothing is
    compiled in a second process is checked on a GPU by tools/gpu_check.py.)"""
    got = run_isolated(
        "import json\nfrom numba.cuda.dispatcher import CUDADispatcher\n"
        "from srcnn_np.gpu import kernels as k\n"
        "print(json.dumps(dict(\n"
        "    caches={name: type(f._cache).__name__ for name, (f, _) in k.SIGNATURES.items()},\n"
        "    defined=sorted(v.py_func.__name__ for v in vars(k).values()\n"
        "                   if isinstance(v, CUDADispatcher) and not v.targetoptions.get('device')),\n"
        "    listed=sorted(f.py_func.__name__ for f, _ in k.SIGNATURES.values()))))\n")
    assert set(got["caches"].values()) == {"CUDACache"}, got
    assert got["defined"] == got["listed"] and len(got["listed"]) == 5, got


class FakeDispatcher:
    """The parts of numba's CUDA dispatcher that load_or_compile uses: a disk cache that holds
    the kernel or not, and compile() recording that it was called."""

    def __init__(self, cached: bool):
        self.overloads, self.compiled = {}, []
        self._cache = SimpleNamespace(load_overload=lambda sig, ctx: "cubin" if cached else None)
        self.targetctx = None

    def compile(self, argtypes):
        self.compiled.append(argtypes)
        self.overloads[argtypes] = "kernel"


def test_compile_notice_only_when_the_disk_cache_misses(monkeypatch, capsys):
    monkeypatch.setattr(config, "ENABLE_CUDASIM", False)  # the simulator compiles nothing
    missing, cached = FakeDispatcher(cached=False), FakeDispatcher(cached=True)
    srcnn_cuda.load_or_compile(missing, "conv2", ("int64", "float32"))
    srcnn_cuda.load_or_compile(missing, "conv2", ("int64", "float32"))  # loaded already
    assert capsys.readouterr().err == srcnn_cuda.COMPILE_NOTICE.format("conv2") + "\n"
    assert missing.compiled == [("int64", "float32")]
    srcnn_cuda.load_or_compile(cached, "conv1", ("int64",))
    assert capsys.readouterr().err == "" and cached.compiled == [("int64",)]


@pytest.fixture
def fresh_status():
    """cuda_status() computed anew in the test, and again after it."""
    srcnn_cuda.cuda_status.cache_clear()
    yield
    srcnn_cuda.cuda_status.cache_clear()


class BrokenCompiler:
    """A kernel whose launch fails the way numba-cuda 0.30.4 with numpy 2.5 failed at its first
    compile (while the GPU itself was found)."""

    def __getitem__(self, launch_config):
        raise AttributeError("module 'numpy' has no attribute 'row_stack'")


@needs_simulator
def test_failing_probe_compile_means_not_usable(monkeypatch, fresh_status, tmp_path, capsys,
                                                 weights_file):
    from PIL import Image

    from srcnn_np import upscale
    from srcnn_np.cli import EXIT_OK, EXIT_USAGE, main
    from srcnn_np.gpu import kernels

    from .conftest import sky

    monkeypatch.setattr(kernels, "probe", BrokenCompiler())
    usable, reason = srcnn_cuda.cuda_status()
    assert not usable and "row_stack" in reason and "\n" not in reason, reason
    with pytest.raises(srcnn_cuda.CudaUnavailableError, match="row_stack"):
        upscale(np.zeros((2, 2), np.float32), random_weights(1), device="cuda")
    image = np.random.default_rng(0).random((2, 3), dtype=np.float32)
    np.testing.assert_array_equal(upscale(image, random_weights(1), device="auto"),
                                  upscale(image, random_weights(1), device="cpu"))
    Image.fromarray(sky(5, 4, 3)).save(tmp_path / "in.png")
    command = ["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"),
               "--weights", weights_file, "--quiet", "--device"]
    assert main(command + ["cuda"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "row_stack" in err[0] and not (tmp_path / "out.png").exists(), err
    assert main(command + ["auto"]) == EXIT_OK
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "running on the CPU" in err[0] and "row_stack" in err[0], err
    assert (tmp_path / "out.png").exists()


class WrongProbe:
    """A kernel that runs but computes garbage (zeros), as a miscompiled one could."""

    def __getitem__(self, launch_config):
        return lambda out: out.copy_to_device(np.zeros(out.shape, np.float32))


@needs_simulator
def test_probe_computing_wrong_numbers_means_not_usable(monkeypatch, fresh_status):
    from srcnn_np.gpu import kernels

    monkeypatch.setattr(kernels, "probe", WrongProbe())
    usable, reason = srcnn_cuda.cuda_status()
    assert not usable and "probe kernel computed 0.0 for 1.0 at lane 0" in reason, reason


def test_tile_plan_covers_the_output_and_reaches_every_tap():
    H, W, scale, tile = 23, 9, 3, 16
    yi, _ = cubic_taps(H, scale)
    xi, _ = cubic_taps(W, scale)
    plan = srcnn_cuda.tile_plan(yi, xi, H * scale, W * scale, tile)
    covered = np.zeros((H * scale, W * scale), int)
    for t in plan:
        covered[t.ty0:t.ty0 + t.th, t.tx0:t.tx0 + t.tw] += 1
        rows = yi[max(t.ty0 - HALO, 0):t.ty0 + t.th + HALO]
        cols = xi[max(t.tx0 - HALO, 0):t.tx0 + t.tw + HALO]
        assert (t.ly0, t.ly1) == (rows.min(), rows.max() + 1), vars(t)
        assert (t.lx0, t.lx1) == (cols.min(), cols.max() + 1), vars(t)
    assert (covered == 1).all(), covered
    assert max(t.ly0 for t in plan) > 0  # later tiles upload only the rows they need


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
