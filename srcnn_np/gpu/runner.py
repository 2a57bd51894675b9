"""The optional GPU path: the SRCNN forward pass on an NVIDIA GPU through numba.cuda.

Install with `pip install "srcnn_np[cuda]"` (numba-cuda). Nothing here imports numba.cuda until
`cuda_status()` or a CudaRunner is used, so CPU-only users never notice it. With
NUMBA_ENABLE_CUDASIM=1 (set before numba.cuda is first imported) the same kernels run in
numba's CUDA simulator, which is how the tests check them without a GPU.

The image goes through in output tiles. A tile of (th, tw) output pixels needs the upsampled
image on a window HALO = 8 pixels wider on every side (conv1's radius 4 + conv2's 2 + conv3's 2),
conv1's output on a window 4 wider and conv2's on a window 2 wider; window pixels outside the
image are set to 0, which is each convolution's zero padding, so tiled output equals untiled
output. The bicubic taps come from the whole image, so tiles need no bicubic halo beyond the
low-res rows and columns their taps reach.

A CudaRunner keeps everything on the device between calls: the weights, the taps of the last
image size, and per stream one set of stage buffers and pinned host buffers, grown only when a
larger tile needs them. Tiles alternate between STREAMS streams, so one tile's transfers and the
host copies around them overlap another tile's kernels.
"""
import functools
import math
import sys

import numpy as np

from .. import bicubic_taps
from ..errors import one_line
from ..geometry import HALO
from ..layers import LAYERS, STAGE_CHANNELS

# Launch shape, chosen by arithmetic and not yet measured on a GPU (tools/gpu_check.py is
# the script for that): blockDim (x, y) of every kernel. The conv kernels' register blocking
# is in srcnn_np.gpu.kernels (compile-time constants); this is a launch-time choice.
THREADS_PER_BLOCK = (16, 8)
STREAMS = 2  # tiles in flight: one's transfers overlap the other's kernels
MAX_TILE = 2048  # output tile edge in pixels; larger tiles gain nothing
MIN_TILE = 64
TILE_MEMORY_FRACTION = 0.5  # of the GPU's free memory the STREAMS sets of tile buffers may take
INSTALL_HINT = 'install the GPU extra: pip install "srcnn_np[cuda]"'
DRIVER_HINT = "the CUDA path needs an NVIDIA GPU and its driver"
NVVM_HINT = 'install the CUDA toolkit wheels: pip install "numba-cuda[cu12]" (or [cu13])'
COMPILE_NOTICE = "srcnn-np: compiling CUDA kernel {} (once: later runs load it from numba's cache)"


class CudaUnavailableError(RuntimeError):
    """No usable CUDA GPU (or numba.cuda is missing); the message is one line saying why."""


@functools.cache
def cuda_status() -> tuple[bool, str]:
    """(usable, reason): whether the CUDA path can run here, and a one-line why or what.

    Usable means a test kernel (kernels.probe) compiled, ran and computed the right numbers,
    so a toolchain that finds the GPU but cannot compile is "not usable". Checked once per
    process (cached). Never raises. Under NUMBA_ENABLE_CUDASIM=1 the simulator counts as a GPU.
    """
    try:
        from numba import cuda
        from numba.core import config
    except ImportError as e:  # a numba without its CUDA target, and no numba-cuda
        return False, f"numba.cuda cannot be imported ({one_line(e)}); {INSTALL_HINT}"
    except Exception as e:  # noqa: BLE001 (never raises); e.g. NUMBA_CUDA_DRIVER naming no file
        return False, f"CUDA is not usable: {one_line(e)}"
    try:
        if config.ENABLE_CUDASIM:
            device = "numba CUDA simulator (NUMBA_ENABLE_CUDASIM=1)"
        else:
            if not cuda.is_available():
                error = cuda.cuda_error()
                if error:
                    return False, f"no usable CUDA driver ({one_line(error)}); {DRIVER_HINT}"
                return False, "no CUDA GPU found"
            from numba.cuda.cudadrv import nvvm

            if not nvvm.is_available():
                return False, f"the CUDA compiler library (NVVM) was not found; {NVVM_HINT}"
            name = cuda.get_current_device().name
            device = f"GPU {name.decode() if isinstance(name, bytes) else name}"
    except Exception as e:  # noqa: BLE001 (never raises: any driver failure means unusable)
        return False, f"CUDA is not usable: {one_line(e)}"
    try:
        prepare_kernels()
        run_probe()
    except Exception as e:  # noqa: BLE001 (a compiler that cannot compile: not usable)
        return False, f"{device} found, but a test kernel failed ({type(e).__name__}: {one_line(e)})"
    return True, device


def prepare_kernels() -> None:
    """Load every kernel of kernels.SIGNATURES from numba's disk cache, or compile it (one line
    on stderr each): any compile failure shows here, before a GPU is declared usable."""
    from . import kernels

    for name, (kernel, argtypes) in kernels.SIGNATURES.items():
        load_or_compile(kernel, name, argtypes)


def run_probe() -> None:
    """Run kernels.probe; raise unless it computed 2 i + 1 in every lane."""
    from numba import cuda

    from . import kernels

    n = kernels.PROBE_SIZE
    out = cuda.device_array(n, dtype=np.float32)
    launch(kernels.probe, "probe", 1, n, 0, 4 * n, out)
    got = out.copy_to_host()
    expected = 2 * np.arange(n, dtype=np.float32) + 1
    if not np.array_equal(got, expected):
        wrong = int(np.flatnonzero(got != expected)[0])
        raise RuntimeError(f"probe kernel computed {got[wrong]} for {expected[wrong]} at lane {wrong}")


def require_cuda() -> None:
    """Raise CudaUnavailableError (one-line reason) unless cuda_status() says usable."""
    usable, reason = cuda_status()
    if not usable:
        raise CudaUnavailableError(f"CUDA device not usable: {reason}")


def launch(kernel, name: str, grid, block, stream, shared: int, *args) -> None:
    """kernel[grid, block, stream, shared](*args), after load_or_compile for these argument types
    (prepare_kernels has done that for the types the runner uses: then it only checks)."""
    from numba.core import config

    if not config.ENABLE_CUDASIM:  # the simulator compiles nothing
        load_or_compile(kernel, name, tuple(kernel.typeof_pyval(a) for a in args))
    kernel[grid, block, stream, shared](*args)


def load_or_compile(kernel, name: str, argtypes: tuple) -> None:
    """Make `kernel` (a numba CUDA dispatcher) ready for `argtypes`: already in this process,
    loaded from numba's disk cache, or compiled after one line on stderr (COMPILE_NOTICE).
    The simulator compiles nothing."""
    from numba.core import config

    if config.ENABLE_CUDASIM or argtypes in kernel.overloads:
        return
    try:  # the lookup numba's compile() starts with, done first to know whether it compiles
        cached = kernel._cache.load_overload(argtypes, kernel.targetctx)
    except Exception:  # noqa: BLE001 - numba internals moved: compile() below still works
        cached = None
    if cached is None:
        print(COMPILE_NOTICE.format(name), file=sys.stderr, flush=True)
    kernel.compile(argtypes)


_last_runner = []  # [CudaRunner]: the one runner_for keeps


def runner_for(kw, tile: int | None) -> "CudaRunner":
    """The CudaRunner of these weights (the same object) and tile request, kept until another
    is asked for: a batch that passes one KernelWeights for every image (the CLI does) reuses
    one runner, and only one runner's device memory stays held."""
    if not (_last_runner and _last_runner[0].kw is kw and _last_runner[0].tile == tile):
        _last_runner.clear()  # frees the old runner's device memory before allocating anew
        _last_runner.append(CudaRunner(kw, tile))
    return _last_runner[0]


def srcnn_forward_cuda(lr: np.ndarray, kw, tile: int | None = None) -> np.ndarray:
    """The SRCNN forward pass on the GPU: (H, W) float32 -> (sH, sW) float32, unclipped.

    Same result as srcnn_np.model.srcnn_forward (to float32 rounding). kw is a
    srcnn_np.model.KernelWeights. tile is the output tile edge in pixels (None: as large as
    fits, see default_tile). Runs on runner_for(kw, tile), so repeated calls with the same kw
    reuse its device buffers. Raises CudaUnavailableError when no GPU is usable.
    """
    require_cuda()
    return runner_for(kw, None if tile is None else int(tile))(lr)


class CudaRunner:
    """The network on the GPU for one KernelWeights: runner(lr) (H, W) float32 -> (sH, sW)
    float32, unclipped.

    The weights go to the device once; stage buffers (per stream: the four (C, h, w) stages
    of stage_shapes, flat, sized for the largest tile so far), the low-res slice and output
    tile in pinned host memory, and the taps of the last image size stay for the next call.
    """

    def __init__(self, kw, tile: int | None = None):
        if tile is not None and tile < 1:
            raise ValueError(f"tile must be >= 1, got {tile}")
        require_cuda()
        from numba import cuda

        from . import kernels

        self.kw = kw
        self.tile = tile  # the request: None for default_tile
        self.tile_edge = tile  # the output tile edge in use (chosen at the first call)
        self.kernels = kernels
        self.layers = []  # (kernel, name, ConvShape, weights, bias) on the device
        for layer, kernel, shape, w, b in zip(LAYERS, kernels.CONV_KERNELS, kernels.CONV_SHAPES,
                                              (kw.w1, kw.w2, kw.w3), (kw.b1, kw.b2, kw.b3)):
            self.layers.append((kernel, layer.name, shape, cuda.to_device(kernels.device_weights(shape, w)),
                                cuda.to_device(np.ascontiguousarray(b, dtype=np.float32))))
        self.streams = [cuda.stream() for _ in range(STREAMS)]
        self.slots = []  # per stream: TileBuffers
        self.capacity = (0, 0, 0)  # (tile height, tile width, low-res slice elements) of slots
        self.taps_shape = None  # (H, W) the device taps are for
        self.taps = None  # host (yi, yw, xi, xw) and device copies, see taps_for
        self.last_plan = []  # the TilePlans of the last call

    def __call__(self, lr: np.ndarray, timings: dict | None = None) -> np.ndarray:
        """The forward pass of one image; timings (optional dict): add each stage's device
        milliseconds (cuda events) under "upload", "bicubic", "conv1".."conv3", "download"."""
        from numba import cuda

        lr = np.ascontiguousarray(lr, dtype=np.float32)
        if lr.ndim != 2 or lr.size == 0:
            raise ValueError(f"lr must be a non-empty (H, W) array, got shape {lr.shape}")
        s = self.kw.scale
        sH, sW = s * lr.shape[0], s * lr.shape[1]
        if self.tile_edge is None:  # once: later calls would see this runner's own buffers as used
            self.tile_edge = default_tile(cuda.current_context().get_memory_info().free)
        tile = self.tile_edge
        taps = self.taps_for(lr.shape)
        plan = self.last_plan = tile_plan(taps[0], taps[2], sH, sW, tile)
        self.ensure_capacity(max(t.th for t in plan), max(t.tw for t in plan),
                             max(t.lr_size for t in plan))
        out = np.empty((sH, sW), dtype=np.float32)
        in_flight = []  # (TilePlan, TileBuffers, events) queued on their slot's stream
        for i, t in enumerate(plan):
            if len(in_flight) == STREAMS:  # this tile's slot is busy with an earlier tile
                self.collect(*in_flight.pop(0), out, timings)
            slot = self.slots[i % STREAMS]
            in_flight.append((t, slot, self.enqueue(t, lr, slot, timings is not None)))
        for queued in in_flight:
            self.collect(*queued, out, timings)
        return out

    def taps_for(self, shape: tuple) -> tuple:
        """(yi, yw, xi, xw, device copies of the four) for a low-res image of `shape`."""
        from numba import cuda

        if self.taps_shape != shape:
            scale = self.kw.scale
            host = (*bicubic_taps.cubic_taps(shape[0], scale), *bicubic_taps.cubic_taps(shape[1], scale))
            self.taps = (*host, [cuda.to_device(a) for a in host])
            self.taps_shape = shape
        return self.taps

    def ensure_capacity(self, th: int, tw: int, lr_size: int) -> None:
        """Reallocate every slot's buffers if a (th, tw) tile or an lr_size slice does not fit."""
        if all(need <= have for need, have in zip((th, tw, lr_size), self.capacity)):
            return
        th, tw, lr_size = (max(need, have) for need, have in zip((th, tw, lr_size), self.capacity))
        self.slots = []  # frees the old buffers before the new ones are allocated
        self.slots = [TileBuffers(th, tw, lr_size, stream) for stream in self.streams]
        self.capacity = (th, tw, lr_size)

    def enqueue(self, t, lr: np.ndarray, slot, timed: bool) -> list:
        """Queue tile t on its slot's stream: upload its low-res slice, run the network into the
        slot's output stage, copy that into the slot's pinned output. Returns the (name, start
        event, end event) of each step when timed, else []."""
        from numba import cuda

        stream, block = slot.stream, tuple(THREADS_PER_BLOCK)
        events = []

        def step(name, run):
            if timed:
                start, end = cuda.event(), cuda.event()
                start.record(stream)
                run()
                end.record(stream)
                events.append((name, start, end))
            else:
                run()

        lr_h, lr_w = t.ly1 - t.ly0, t.lx1 - t.lx0
        host_lr = slot.host_lr[:lr_h * lr_w].reshape(lr_h, lr_w)
        host_lr[:] = lr[t.ly0:t.ly1, t.lx0:t.lx1]  # the previous use of host_lr is done: collected
        device_lr = slot.device_lr[:lr_h * lr_w].reshape(lr_h, lr_w)
        step("upload", lambda: device_lr.copy_to_device(host_lr, stream=stream))
        stages = slot.stages_for(t.th, t.tw)
        oy0, ox0 = t.ty0 - HALO, t.tx0 - HALO  # global position of the upsampled window
        grid = (math.ceil(stages[0].shape[2] / block[0]), math.ceil(stages[0].shape[1] / block[1]))
        step("bicubic", lambda: launch(self.kernels.bicubic_tile, "bicubic", grid, block, stream, 0,
                                       device_lr, t.ly0, t.lx0, *self.taps[4], oy0, ox0, stages[0]))
        sH, sW = self.taps[0].shape[0], self.taps[2].shape[0]
        for (kernel, name, shape, w, b), src, dst in zip(self.layers, stages, stages[1:]):
            oy0, ox0 = oy0 + shape.K // 2, ox0 + shape.K // 2
            grid = self.kernels.conv_grid(shape, dst.shape[1:], block)
            shared = self.kernels.shared_bytes(shape, block)
            step(name, lambda: launch(kernel, name, grid, block, stream, shared,
                                      src, w, b, oy0, ox0, sH, sW, dst))
        host_out = slot.host_out[:t.th * t.tw].reshape(1, t.th, t.tw)
        step("download", lambda: stages[-1].copy_to_host(host_out, stream=stream))
        return events

    @staticmethod
    def collect(t, slot, events: list, out: np.ndarray, timings: dict | None) -> None:
        """Wait for tile t's stream, copy its output into `out`, add its step times to timings."""
        slot.stream.synchronize()
        out[t.ty0:t.ty0 + t.th, t.tx0:t.tx0 + t.tw] = \
            slot.host_out[:t.th * t.tw].reshape(t.th, t.tw)
        for name, start, end in events:
            timings[name] = timings.get(name, 0.0) + start.elapsed_time(end)


class TilePlan:
    """One output tile (ty0, tx0, th, tw) and the low-res rows [ly0, ly1) and columns [lx0, lx1)
    its window's bicubic taps reach; lr_size = their element count."""

    def __init__(self, ty0, tx0, th, tw, ly0, ly1, lx0, lx1):
        self.ty0, self.tx0, self.th, self.tw = ty0, tx0, th, tw
        self.ly0, self.ly1, self.lx0, self.lx1 = ly0, ly1, lx0, lx1
        self.lr_size = (ly1 - ly0) * (lx1 - lx0)


def tile_plan(yi: np.ndarray, xi: np.ndarray, sH: int, sW: int, tile: int) -> list:
    """The TilePlans covering an (sH, sW) output in row-major order; yi, xi: (sH, 4), (sW, 4)
    tap indices of bicubic_taps.cubic_taps."""
    def reach(taps, start, stop):  # low-res span of the taps of window pixels in the image
        used = taps[max(start, 0):min(stop, len(taps))]
        return int(used.min()), int(used.max()) + 1

    plan = []
    for ty0 in range(0, sH, tile):
        for tx0 in range(0, sW, tile):
            th, tw = min(tile, sH - ty0), min(tile, sW - tx0)
            plan.append(TilePlan(ty0, tx0, th, tw, *reach(yi, ty0 - HALO, ty0 + th + HALO),
                                 *reach(xi, tx0 - HALO, tx0 + tw + HALO)))
    return plan


class TileBuffers:
    """One stream's buffers: the flat device stages (sized for a (th, tw) tile), the device and
    pinned host low-res slice (lr_size elements) and the pinned host output tile."""

    def __init__(self, th: int, tw: int, lr_size: int, stream):
        from numba import cuda

        self.stream = stream
        self.stages = [cuda.device_array(math.prod(shape), dtype=np.float32)
                       for shape in stage_shapes(th, tw)]
        self.device_lr = cuda.device_array(lr_size, dtype=np.float32)
        self.host_lr = cuda.pinned_array(lr_size, dtype=np.float32)
        self.host_out = cuda.pinned_array(th * tw, dtype=np.float32)

    def stages_for(self, th: int, tw: int) -> list:
        """The stage buffers as contiguous (C, h, w) views for a (th, tw) tile."""
        return [flat[:math.prod(shape)].reshape(shape)
                for flat, shape in zip(self.stages, stage_shapes(th, tw))]


def default_tile(free_bytes: float) -> int:
    """Largest output tile edge (a multiple of MIN_TILE, <= MAX_TILE) whose STREAMS sets of
    buffers fit in TILE_MEMORY_FRACTION of `free_bytes` of GPU memory."""
    budget = TILE_MEMORY_FRACTION * free_bytes / STREAMS
    edge = MAX_TILE
    while edge > MIN_TILE and tile_bytes(edge, edge) > budget:
        edge -= MIN_TILE
    return edge


def stage_shapes(th: int, tw: int) -> list:
    """(C, h, w) of each stage's window for an output tile (th, tw): upsampled
    (1, th+16, tw+16), conv1 (64, th+8, tw+8), conv2 (32, th+4, tw+4), output (1, th, tw)."""
    shapes = [(STAGE_CHANNELS[0], th + 2 * HALO, tw + 2 * HALO)]
    for layer in LAYERS:
        _, h, w = shapes[-1]
        shapes.append((layer.channels_out, h - 2 * layer.radius, w - 2 * layer.radius))
    return shapes


def tile_bytes(th: int, tw: int) -> int:
    """Device bytes of the float32 stage buffers of one (th, tw) output tile."""
    return 4 * sum(math.prod(shape) for shape in stage_shapes(th, tw))
