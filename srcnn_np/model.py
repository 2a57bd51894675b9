"""The SRCNN forward pass on top of the kernels, and the image-level `upscale`.

    lr (H, W) float32
    -> bicubic_upsample            (sH, sW)
    -> conv1 9x9 1->64 + ReLU      (sH, sW, 64)
    -> conv2 5x5 64->32 + ReLU     (sH, sW, 32)
    -> conv3 5x5 32->1             (sH, sW)       not clipped

`upscale` runs it on an image extended by edge replication (EDGES), so that the convs' zero
padding never meets the image.
"""
from dataclasses import dataclass
from functools import partial

import numpy as np

from .cpu import kernels
from .geometry import DEFAULT_TILE, EDGES, edge_margin, tile_windows
from .color import rgb_to_ycbcr, ycbcr_to_rgb
from .weights import Weights, load_weights

MODES = ("rgb", "y")
DEVICES = ("cpu", "cuda", "auto")


@dataclass(frozen=True)
class KernelWeights:
    """Weights in the kernels' layout: (KH, KW, Cin, Cout) float32, C-contiguous."""

    w1: np.ndarray  # (9, 9, 1, 64)
    b1: np.ndarray  # (64,)
    w2: np.ndarray  # (5, 5, 64, 32)
    b2: np.ndarray  # (32,)
    w3: np.ndarray  # (5, 5, 32, 1)
    b3: np.ndarray  # (1,)
    scale: int

    @classmethod
    def from_weights(cls, w: Weights):
        def hwio(oihw):
            return np.ascontiguousarray(oihw.transpose(2, 3, 1, 0), dtype=np.float32)

        def vec(bias):  # a writable copy: read-only arrays would make Numba compile another version
            return np.array(bias, dtype=np.float32)

        return cls(hwio(w.conv1_weight), vec(w.conv1_bias), hwio(w.conv2_weight), vec(w.conv2_bias),
                   hwio(w.conv3_weight), vec(w.conv3_bias), int(w.scale))


class Workspace:
    """Memory for one window's padded maps, reused from tile to tile and channel to channel.

    Page-faulting fresh maps costs about as much as a memset of them; reusing the storage of the
    largest window seen keeps that to the first window. Holds at most one window's maps.
    """

    def __init__(self):
        self.storage = {}

    def padded_map(self, name: str, h: int, w: int, channels: int, pad: int) -> np.ndarray:
        """kernels.padded_map laid into this workspace's storage for `name` (grown when too small)."""
        size = (h + 2 * pad) * (kernels.ceil_block(w) + 2 * pad) * channels
        storage = self.storage.get(name)
        if storage is None or storage.size < size:
            storage = self.storage[name] = None  # free the old storage before allocating the new
            storage = self.storage[name] = np.empty(size, dtype=np.float32)
        return kernels.padded_map(h, w, channels, pad, storage)


def kernel_input(lr: np.ndarray) -> np.ndarray:
    """lr as the kernels take it: (H, W) float32, C-contiguous and writable (one compiled version)."""
    return np.require(lr, np.float32, ["C_CONTIGUOUS", "WRITEABLE"])


def upsample_conv1(lr: np.ndarray, kw: KernelWeights, y0: int, x0: int, h: int, w: int,
                   ws: Workspace, block=None) -> tuple:
    """The first two stages on the (h, w) window [y0:y0 + h, x0:x0 + w] of the upsampled image.

    lr (H, W) float32 as kernel_input makes it. Returns the kernels' padded maps (see
    srcnn_np.cpu.kernels), laid in `ws`: the upsampled window (h + 8, ceil8(w) + 8, 1) and conv1
    (h + 4, ceil8(w) + 4, 64) float32, zero-padded at the window's edge. block: the kernels'
    register block (srcnn_np.cpu.isa.VARIANTS; None: this CPU's).
    """
    p1, p2 = kw.w1.shape[0] // 2, kw.w2.shape[0] // 2
    up = ws.padded_map("upsampled", h, w, 1, p1)
    kernels.bicubic_window(lr, kw.scale, y0, x0, h, w, up.reshape(up.shape[:2]), p1)
    conv1 = ws.padded_map("conv1", h, w, kw.w1.shape[3], p2)
    kernels.conv_relu_into(up, kw.w1, kw.b1, w, True, conv1, p2, block)
    return up, conv1


def window_output(lr: np.ndarray, kw: KernelWeights, y0: int, x0: int, h: int, w: int,
                  ws: Workspace) -> np.ndarray:
    """The network's (h, w) float32 output on the window [y0:y0 + h, x0:x0 + w] (fast path).

    Each conv zero-pads at the window's edge: the result equals the whole-image network, bit for
    bit, except within kernels.WINDOW_HALO pixels of a window edge inside the image (callers crop
    that margin). conv2 and conv3 run fused, without a conv2 map.
    """
    _, conv1 = upsample_conv1(lr, kw, y0, x0, h, w, ws)
    out = np.empty((h, w), dtype=np.float32)
    kernels.conv_relu_then_single_out_into(conv1, kw.w2, kw.b2, kw.w3, kw.b3, w, out, x_origin=x0, y_origin=y0)
    return out


def forward_stages(lr: np.ndarray, kw: KernelWeights, block=None) -> dict:
    """Every stage of the network for one (H, W) float32 channel, untiled, channels-last.

    Returns "upsampled" (sH, sW), "conv1" (sH, sW, 64), "conv2" (sH, sW, 32), "output" (sH, sW)
    float32; the first three are views into the kernels' padded maps. Runs conv2 and conv3 as
    separate kernels (the row kernels the fused fast path is built from) to expose conv2.
    block: the kernels' register block (srcnn_np.cpu.isa.VARIANTS; None: this CPU's).
    """
    lr = kernel_input(lr)
    sH, sW = lr.shape[0] * kw.scale, lr.shape[1] * kw.scale
    p1, p2, p3 = kw.w1.shape[0] // 2, kw.w2.shape[0] // 2, kw.w3.shape[0] // 2
    ws = Workspace()
    up, conv1 = upsample_conv1(lr, kw, 0, 0, sH, sW, ws, block)
    conv2 = ws.padded_map("conv2", sH, sW, kw.w2.shape[3], p3)
    kernels.conv_relu_into(conv1, kw.w2, kw.b2, sW, True, conv2, p3, block)
    out = np.empty((sH, sW), dtype=np.float32)
    kernels.conv_single_out_into(conv2, kw.w3, kw.b3, sW, out, block)
    return {"upsampled": up[p1:p1 + sH, p1:p1 + sW, 0], "conv1": conv1[p2:p2 + sH, p2:p2 + sW],
            "conv2": conv2[p3:p3 + sH, p3:p3 + sW], "output": out}


def srcnn_forward(lr: np.ndarray, kw: KernelWeights, tile: int | None = None,
                  workspace: Workspace | None = None, on_tile=None) -> np.ndarray:
    """(H, W) float32 -> (sH, sW) float32, the network's raw (unclipped) output.

    Computed in output tiles of tile x tile pixels (None: DEFAULT_TILE), each on a window grown by
    kernels.WINDOW_HALO pixels on its sides inside the image and cropped back, so the result is
    the untiled network's, bit for bit; the working memory is that of one window, kept in `workspace` (default:
    a new one; pass one to reuse it across calls). on_tile() is called after each tile.
    """
    tile = DEFAULT_TILE if tile is None else int(tile)
    if tile < 1:
        raise ValueError(f"tile must be >= 1 output pixels, got {tile}")
    lr = kernel_input(lr)
    sH, sW = lr.shape[0] * kw.scale, lr.shape[1] * kw.scale
    out = np.empty((sH, sW), dtype=np.float32)
    ws = Workspace() if workspace is None else workspace
    for oy0, oy1, wy0, wy1 in tile_windows(sH, tile, kernels.WINDOW_HALO):
        for ox0, ox1, wx0, wx1 in tile_windows(sW, tile, kernels.WINDOW_HALO):
            win = window_output(lr, kw, wy0, wx0, wy1 - wy0, wx1 - wx0, ws)
            out[oy0:oy1, ox0:ox1] = win[oy0 - wy0:oy1 - wy0, ox0 - wx0:ox1 - wx0]
            if on_tile is not None:
                on_tile()
    return out


def network_tiles(shape: tuple, mode: str = "rgb", tile: int | None = None, scale: int = 2,
                  edges: str = "replicate") -> int:
    """How many network tiles (CPU) `upscale` runs for an image of `shape` (H, W[, C]): the
    number of on_tile calls it makes, for progress bars."""
    t = DEFAULT_TILE if tile is None else int(tile)
    grown = 2 * edge_margin(scale) if edges == "replicate" else 0
    per_channel = -(-(shape[0] + grown) * scale // t) * -(-(shape[1] + grown) * scale // t)
    channels = shape[2] if len(shape) == 3 else 1
    through_net = 1 if channels <= 2 or mode == "y" else 3
    return per_channel * through_net


def to_float01(image: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / float image -> float32 in [0, 1] (floats are taken as already in [0, 1])."""
    a = np.asarray(image)
    if a.dtype.kind == "u" and a.dtype.itemsize in (1, 2):  # either byte order
        return a.astype(np.float32) / np.float32(255 if a.dtype.itemsize == 1 else 65535)
    if a.dtype.kind == "f":
        a = a.astype(np.float32)
        if not np.isfinite(a).all():
            raise ValueError("image holds NaN or inf values")
        return a
    raise TypeError(f"unsupported image dtype {a.dtype}: use uint8, uint16 or float")


def resolve_weights(weights, scale: int = 2) -> KernelWeights:
    """None (shipped weights for `scale`), a path, a Weights or a KernelWeights -> KernelWeights."""
    if isinstance(weights, KernelWeights):
        return weights
    if not isinstance(weights, Weights):
        weights = load_weights(weights, scale=scale)
    return KernelWeights.from_weights(weights)


def network_on(device: str, kw: KernelWeights, tile: int | None, on_tile=None, edges: str = "replicate"):
    """The network as a function (H, W) float32 -> (sH, sW) float32 on `device`.

    "cpu": the Numba kernels; "cuda": numba.cuda (CudaUnavailableError, one line, when no GPU is
    usable); "auto": the GPU when one is usable, else the CPU. on_tile: see srcnn_forward (CPU only).
    edges: see EDGES.
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if edges not in EDGES:
        raise ValueError(f"edges must be one of {EDGES}, got {edges!r}")
    network = None
    if device != "cpu":
        from .gpu import runner as cuda  # lazy: the CPU path never imports numba.cuda

        if device == "cuda":
            cuda.require_cuda()
        if device == "cuda" or cuda.cuda_status()[0]:
            network = partial(cuda.srcnn_forward_cuda, kw=kw, tile=tile)
    if network is None:  # one Workspace (one window's maps), shared by every tile of every channel
        network = partial(srcnn_forward, kw=kw, tile=tile, workspace=Workspace(), on_tile=on_tile)
    if edges == "zero":
        return network
    m = edge_margin(kw.scale)
    c = m * kw.scale

    def replicate_edges(lr):  # (H, W) -> network on (H + 2m, W + 2m) -> crop to (sH, sW)
        return network(np.pad(lr, m, mode="edge"))[c:-c, c:-c]
    return replicate_edges


def upscale(image: np.ndarray, weights=None, *, mode: str = "rgb", scale: int = 2,
            tile: int | None = None, device: str = "cpu", on_tile=None,
            edges: str = "replicate") -> np.ndarray:
    """Super-resolve an image by the weights' scale.

    image: (H, W) or (H, W, C) uint8, uint16 or float (in [0, 1]); C = 1 gray, 2 gray+alpha,
           3 RGB, 4 RGBA.
    weights: None for the shipped weights of `scale`, a path to a weights file, or Weights.
    mode: "rgb" runs every colour channel through the net (the seed's behaviour); "y" runs only
          the BT.601 luminance and upsamples chroma bicubically (about 3x faster).
    Alpha is always upsampled bicubically, never through the net.
    tile: output tile side in pixels for the network (None: DEFAULT_TILE, 512); the result does
          not depend on it (bit for bit), the peak memory does (about 260 x (tile + 22)^2 bytes).
    device: "cpu" (default), "cuda" or "auto" (see network_on).
    on_tile: called after each network tile on the CPU (network_tiles(...) calls in all), for progress.
    edges: "replicate" (default) or "zero", how the network meets the image's border (see EDGES).
    Returns (sH, sW) or (sH, sW, C) float32 clipped to [0, 1].
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    a = to_float01(image)
    if a.ndim not in (2, 3) or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"image must be (H, W) or (H, W, C) with H, W >= 1, got shape {a.shape}")
    kw = resolve_weights(weights, scale)
    if kw.scale != scale:
        raise ValueError(f"weights are for scale {kw.scale}, asked for scale {scale}")
    network = network_on(device, kw, tile, on_tile, edges)
    if a.ndim == 2:
        return np.clip(network(a), 0.0, 1.0)
    C = a.shape[2]
    if C not in (1, 2, 3, 4):
        raise ValueError(f"image must have 1 to 4 channels, got {C}")
    colour = a[:, :, : 1 if C <= 2 else 3]
    out = np.empty((a.shape[0] * kw.scale, a.shape[1] * kw.scale, C), dtype=np.float32)
    if mode == "y" and colour.shape[2] == 3:
        ycc = rgb_to_ycbcr(colour)
        up = np.stack([network(ycc[:, :, 0])]
                      + [bicubic(ycc[:, :, c], kw.scale) for c in (1, 2)], axis=2)
        out[:, :, :3] = ycbcr_to_rgb(up)
    else:
        for c in range(colour.shape[2]):
            out[:, :, c] = network(colour[:, :, c])
    if C in (2, 4):
        out[:, :, C - 1] = bicubic(a[:, :, C - 1], kw.scale)
    return np.clip(out, 0.0, 1.0, out=out)


def bicubic(channel: np.ndarray, scale: int) -> np.ndarray:
    """(H, W) float32 -> (sH, sW) float32 plain bicubic upsampling (no network)."""
    return kernels.bicubic_upsample(channel, scale)
