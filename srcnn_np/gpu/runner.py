"""The optional GPU path: the SRCNN forward pass on an NVIDIA GPU through numba.cuda.

Install with `pip install "srcnn_np[cuda]"` (numba-cuda). Nothing here imports numba.cuda until
`cuda_status()` or `srcnn_forward_cuda()` is called, so CPU-only users never notice it.
With NUMBA_ENABLE_CUDASIM=1 (set before numba.cuda is first imported) the same kernels run in
numba's CUDA simulator, which is how the tests check them without a GPU.

The image goes through in square output tiles. A tile of (th, tw) output pixels needs the
upsampled image on a window HALO = 8 pixels wider on every side (conv1's radius 4 + conv2's 2
+ conv3's 2), conv1's output on a window 4 wider and conv2's on a window 2 wider; window pixels
outside the image are set to 0, which is each convolution's zero padding, so tiled output
equals untiled output. The bicubic taps come from the whole image, so tiles need no bicubic
halo beyond the low-res rows and columns their taps reach.
"""
import math

import numpy as np

from ..errors import one_line
from ..cpu.kernels import cubic_taps
from ..geometry import HALO

# HALO (8) is the network's receptive-field radius in upsampled pixels: 4 + 2 + 2.

THREADS_PER_BLOCK = (16, 16)  # blockDim (x, y): columns, rows of output pixels per block
# Per convolution: (K, Cin, Cout, input channels staged in shared memory at a time, ReLU).
# At 16x16 threads the shared memory per block is 23 KB, 38 KB and 27 KB (limit 48 KB).
CONV_LAYERS = ((9, 1, 64, 1, True), (5, 64, 32, 8, True), (5, 32, 1, 16, False))
MAX_TILE = 2048  # output tile edge in pixels; larger tiles gain nothing
MIN_TILE = 64
TILE_MEMORY_FRACTION = 0.5  # of the GPU's free memory a tile's buffers may take
INSTALL_HINT = 'install the GPU extra: pip install "srcnn_np[cuda]"'
DRIVER_HINT = "the CUDA path needs an NVIDIA GPU and its driver"
NVVM_HINT = 'install the CUDA toolkit wheels: pip install "numba-cuda[cu12]" (or [cu13])'


class CudaUnavailableError(RuntimeError):
    """No usable CUDA GPU (or numba.cuda is missing); the message is one line saying why."""


def cuda_status() -> tuple[bool, str]:
    """(usable, reason): whether the CUDA path can run here, and a one-line why or what.

    Never raises. Under NUMBA_ENABLE_CUDASIM=1 the simulator counts as usable.
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
            return True, "numba CUDA simulator (NUMBA_ENABLE_CUDASIM=1)"
        if not cuda.is_available():
            error = cuda.cuda_error()
            if error:
                return False, f"no usable CUDA driver ({one_line(error)}); {DRIVER_HINT}"
            return False, "no CUDA GPU found"
        from numba.cuda.cudadrv import nvvm

        if not nvvm.is_available():
            return False, f"the CUDA compiler library (NVVM) was not found; {NVVM_HINT}"
        name = cuda.get_current_device().name
        return True, f"GPU {name.decode() if isinstance(name, bytes) else name}"
    except Exception as e:  # noqa: BLE001 (never raises: any driver failure means unusable)
        return False, f"CUDA is not usable: {one_line(e)}"


def require_cuda() -> None:
    """Raise CudaUnavailableError (one-line reason) unless cuda_status() says usable."""
    usable, reason = cuda_status()
    if not usable:
        raise CudaUnavailableError(f"CUDA device not usable: {reason}")


def srcnn_forward_cuda(lr: np.ndarray, kw, tile: int | None = None) -> np.ndarray:
    """The SRCNN forward pass on the GPU: (H, W) float32 -> (sH, sW) float32, unclipped.

    Same result as srcnn_np.model.srcnn_forward (to float32 rounding). kw is a
    srcnn_np.model.KernelWeights. tile is the output tile edge in pixels (None: as large as
    fits in half the GPU's free memory, at most MAX_TILE). Raises CudaUnavailableError when
    no GPU is usable.
    """
    require_cuda()
    from numba import cuda

    from . import kernels

    lr = np.ascontiguousarray(lr, dtype=np.float32)
    if lr.ndim != 2 or lr.size == 0:
        raise ValueError(f"lr must be a non-empty (H, W) array, got shape {lr.shape}")
    if tile is None:
        tile = default_tile(cuda.current_context().get_memory_info().free)
    if int(tile) < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    tile = int(tile)
    s = kw.scale
    H, W = lr.shape
    sH, sW = s * H, s * W
    yi, yw = cubic_taps(H, s)
    xi, xw = cubic_taps(W, s)
    taps = [cuda.to_device(a) for a in (yi, yw, xi, xw)]
    block = tuple(THREADS_PER_BLOCK)
    layers = []  # (K, kernel, flat (Cin, K*K, Cout) weights, bias) on the device
    for (k, cin, cout, chunk, relu), w, b in zip(CONV_LAYERS, (kw.w1, kw.w2, kw.w3),
                                                 (kw.b1, kw.b2, kw.b3)):
        w_dev = np.ascontiguousarray(w.transpose(2, 0, 1, 3), dtype=np.float32).ravel()
        layers.append((k, kernels.conv_kernel(k, cin, cout, chunk, relu, block),
                       cuda.to_device(w_dev), cuda.to_device(np.ascontiguousarray(b, np.float32))))
    out = np.empty((sH, sW), dtype=np.float32)
    buffers = {}  # (th, tw) -> device arrays of every stage, reused by same-shaped tiles
    for ty0 in range(0, sH, tile):
        for tx0 in range(0, sW, tile):
            th, tw = min(tile, sH - ty0), min(tile, sW - tx0)
            if (th, tw) not in buffers:
                buffers[(th, tw)] = [cuda.device_array(shape, dtype=np.float32)
                                     for shape in stage_shapes(th, tw)]
            stages = buffers[(th, tw)]  # device (C, h, w) windows, see stage_shapes
            oy0, ox0 = ty0 - HALO, tx0 - HALO  # global position of the upsampled window
            # low-res rows and columns the taps of the window's in-image pixels reach
            rows = yi[max(oy0, 0):min(oy0 + th + 2 * HALO, sH)]
            cols = xi[max(ox0, 0):min(ox0 + tw + 2 * HALO, sW)]
            ly0, lx0 = int(rows.min()), int(cols.min())
            lr_dev = cuda.to_device(np.ascontiguousarray(
                lr[ly0:int(rows.max()) + 1, lx0:int(cols.max()) + 1]))
            kernels.bicubic_tile[_grid(stages[0], block), block](
                lr_dev, ly0, lx0, *taps, oy0, ox0, stages[0])
            for (k, conv, w_dev, b_dev), src, dst in zip(layers, stages, stages[1:]):
                oy0, ox0 = oy0 + k // 2, ox0 + k // 2
                conv[_grid(dst, block), block](src, w_dev, b_dev, oy0, ox0, sH, sW, dst)
            out[ty0:ty0 + th, tx0:tx0 + tw] = stages[-1].copy_to_host()[0]
    return out


def default_tile(free_bytes: float) -> int:
    """Largest output tile edge (a multiple of MIN_TILE, <= MAX_TILE) whose buffers fit in
    TILE_MEMORY_FRACTION of `free_bytes` of GPU memory."""
    budget = TILE_MEMORY_FRACTION * free_bytes
    edge = MAX_TILE
    while edge > MIN_TILE and tile_bytes(edge, edge) > budget:
        edge -= MIN_TILE
    return edge


def stage_shapes(th: int, tw: int) -> list:
    """(C, h, w) of each stage's window for an output tile (th, tw): upsampled
    (1, th+16, tw+16), conv1 (64, th+8, tw+8), conv2 (32, th+4, tw+4), output (1, th, tw)."""
    shapes = [(1, th + 2 * HALO, tw + 2 * HALO)]
    for k, _, cout, _, _ in CONV_LAYERS:
        _, h, w = shapes[-1]
        shapes.append((cout, h - 2 * (k // 2), w - 2 * (k // 2)))
    return shapes


def tile_bytes(th: int, tw: int) -> int:
    """Device bytes of the float32 stage buffers of one (th, tw) output tile."""
    return 4 * sum(math.prod(shape) for shape in stage_shapes(th, tw))


def _grid(array, block: tuple) -> tuple:
    """Blocks (x, y) covering the (C, h, w) array's pixels with one thread each."""
    return math.ceil(array.shape[2] / block[0]), math.ceil(array.shape[1] / block[1])
