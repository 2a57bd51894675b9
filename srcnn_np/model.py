"""The SRCNN forward pass on top of the kernels, and the Upscaler that every route calls.

    lr (H, W) float32
    -> bicubic_upsample            (sH, sW)
    -> conv1 9x9 1->64 + ReLU      (sH, sW, 64)
    -> conv2 5x5 64->32 + ReLU     (sH, sW, 32)
    -> conv3 5x5 32->1             (sH, sW)       not clipped

An `Upscaler` holds the weights and every choice that shapes the output (mode, device, tile,
edges, the science options); calling it on an image runs the network channel by channel, on an
image extended by edge replication (options.EDGES) so that the convs' zero padding never meets
the image. `upscale()`, the CLI's batch, srcnn_np.chunked (Dask), evaluate and the viewer all go
through one.
"""
import os
import warnings
from dataclasses import asdict, dataclass, field, replace
from functools import partial

import numpy as np

from .config import __version__
from .cpu import kernels
from .cpu.simd import aligned_copy, aligned_empty
from .geometry import DEFAULT_TILE, edge_margin, tile_windows
from .color import ycbcr_plane, ycbcr_to_rgb
from .options import (DEFAULT_DEVICE, DEFAULT_EDGES, DEFAULT_FLUX_UNITS, DEFAULT_MODE, DEFAULT_STRETCH, DEVICES,
                      EDGES, MODES, ScienceOptions, check_choice, in_unit_range)
from .science import BlankImageError, channel_ranges, upscale_channels, upscale_science
from .weights import Weights, load_weights

OUTSIDE_UNIT_RANGE = ("float image with values outside [0, 1] or NaN/inf: the network takes [0, 1]; "
                      "srcnn_np.upscale maps such data from its finite range and back (stretch=, conserve_flux=)")


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
        def hwio(oihw):  # on a cache line, like the maps (aligned_empty)
            return aligned_copy(oihw.transpose(2, 3, 1, 0))

        def vec(bias):  # a writable copy: read-only arrays would make Numba compile another version
            return aligned_copy(bias)

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
            storage = self.storage[name] = aligned_empty(size)
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


def to_float01(image: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / float image -> float32 in [0, 1].

    Float data must already be finite and within [0, 1] (options.in_unit_range); anything else is
    refused with one line (ValueError), never clipped: `upscale` maps such data itself.
    """
    a = np.asarray(image)
    if a.dtype.kind == "u" and a.dtype.itemsize in (1, 2):  # either byte order
        return a.astype(np.float32) / np.float32(255 if a.dtype.itemsize == 1 else 65535)
    if a.dtype.kind == "f":
        if not in_unit_range(a):
            raise ValueError(OUTSIDE_UNIT_RANGE)
        return a.astype(np.float32)
    raise TypeError(f"unsupported image dtype {a.dtype}: use uint8, uint16 or float")


def resolve_weights(weights, scale: int = 2, model: str = "astro") -> KernelWeights:
    """None (the shipped `model` for `scale`), a path, a Weights or a KernelWeights -> KernelWeights."""
    if isinstance(weights, KernelWeights):
        return weights
    if not isinstance(weights, Weights):
        weights = load_weights(weights, scale=scale, model=model)
    return KernelWeights.from_weights(weights)


def network_on(device: str, kw: KernelWeights, tile: int | None, on_tile=None, edges: str = DEFAULT_EDGES):
    """The network as a function (H, W) float32 -> (sH, sW) float32 on `device`.

    "cpu": the Numba kernels; "cuda": numba.cuda (CudaUnavailableError, one line, when no GPU is
    usable); "auto": the GPU when one is usable, else the CPU. on_tile: see srcnn_forward (CPU only).
    edges: see EDGES.
    """
    check_choice("device", device, DEVICES)
    check_choice("edges", edges, EDGES)
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


@dataclass(frozen=True)
class Upscaler:
    """The network and every choice that shapes its output: built once, called on many images.

    weights: KernelWeights (Upscaler.load takes None, a path or Weights too); label names them in
        the outputs' provenance ("shipped astro", a file name).
    mode: "rgb" runs every colour channel through the net (the seed's behaviour); "y" runs only
        the BT.601 luminance and upsamples chroma bicubically (faster, less memory).
    device: "cpu", "cuda" or "auto" (see network_on). tile: the network's output tile side (None:
        DEFAULT_TILE); the result does not depend on it (bit for bit), the peak memory does
        (about 260 x (tile + 22)^2 bytes). edges: see options.EDGES.
    science: how data in physical units is mapped into the network's [0, 1] and back.
    Frozen and picklable: a Dask worker receives it as it is.
    """

    weights: KernelWeights
    mode: str = DEFAULT_MODE
    device: str = DEFAULT_DEVICE
    tile: int | None = None
    edges: str = DEFAULT_EDGES
    science: ScienceOptions = field(default_factory=ScienceOptions)
    label: str = "custom weights"

    def __post_init__(self):
        check_choice("mode", self.mode, MODES)
        check_choice("device", self.device, DEVICES)
        check_choice("edges", self.edges, EDGES)
        if self.tile is not None and int(self.tile) < 1:
            raise ValueError(f"tile must be >= 1 output pixels, got {self.tile}")

    @classmethod
    def load(cls, weights=None, *, scale: int = 2, model: str = "astro", **choices) -> "Upscaler":
        """An Upscaler of weights None (the shipped `model` for `scale`), a path, Weights or
        KernelWeights; choices: the other fields. ValueError when the weights are for another scale."""
        kw = resolve_weights(weights, scale, model)
        if kw.scale != scale:
            raise ValueError(f"weights are for scale {kw.scale}, asked for scale {scale}")
        if "label" not in choices and (weights is None or isinstance(weights, (str, os.PathLike))):
            choices["label"] = f"shipped {model}" if weights is None else os.path.basename(os.fspath(weights))
        return cls(kw, **choices)

    @property
    def scale(self) -> int:
        return self.weights.scale

    def network(self, on_tile=None):
        """The network on one plane, (H, W) float32 in [0, 1] -> (sH, sW) float32, not clipped."""
        return network_on(self.device, self.weights, self.tile, on_tile, self.edges)

    def __call__(self, image: np.ndarray, on_tile=None, data_ranges: list | None = None) -> np.ndarray:
        """Super-resolve an image by self.scale.

        image: (H, W) or (H, W, C) uint8, uint16 or float; C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA.
            Float data within [0, 1] goes through the network as it is; float data with values
            outside [0, 1] or NaN/inf (blank) pixels is in physical units: each colour channel is
            mapped from its finite range into [0, 1] and back (srcnn_np.science), never clipped;
            so is any image when self.science asks for more than the plain linear map.
        Alpha is always upsampled bicubically, never through the net.
        on_tile: called after each network tile on the CPU (self.tiles(shape) calls), for progress.
        data_ranges: one (low, high) per colour channel to map from instead of the image's own
            (srcnn_np.chunked: a whole image's ranges when `image` is one chunk of it).
        Returns (sH, sW[, C]) float32 in [0, 1]; for mapped data float32 (float64 for float64
        input) in the input's units, NaN over the s x s block of every blank input pixel.
        """
        if data_ranges is not None or needs_mapping(image, self.science):
            return self._mapped(image, on_tile, data_ranges)
        a = to_float01(image)
        if a.ndim not in (2, 3) or a.shape[0] < 1 or a.shape[1] < 1:
            raise ValueError(f"image must be (H, W) or (H, W, C) with H, W >= 1, got shape {a.shape}")
        network = self.network(on_tile)
        if a.ndim == 2:
            return np.clip(network(a), 0.0, 1.0)
        C = a.shape[2]
        if C not in (1, 2, 3, 4):
            raise ValueError(f"image must have 1 to 4 channels, got {C}")
        colour = a[:, :, : 1 if C <= 2 else 3]
        if self.mode == "y" and colour.shape[2] == 3:
            out = upscale_luminance(colour, network, self.scale, C)
        else:
            out = np.empty((a.shape[0] * self.scale, a.shape[1] * self.scale, C), dtype=np.float32)
            for c in range(colour.shape[2]):
                out[:, :, c] = network(colour[:, :, c])
        if C in (2, 4):
            out[:, :, C - 1] = bicubic(a[:, :, C - 1], self.scale)
        return np.clip(out, 0.0, 1.0, out=out)

    def _mapped(self, image: np.ndarray, on_tile, data_ranges) -> np.ndarray:
        """__call__ for data in physical units, as FITS data goes (srcnn_np.science): each colour
        channel mapped from its range onto [0, 1] (science.channel_ranges), blanks (NaN/inf)
        filled, the network run once on all channels (so mode "y" still sees colour), mapped back.
        Alpha (C = 2 or 4) must be in [0, 1]. BlankImageError (one line) when no pixel is finite."""
        a = np.asarray(image)
        a = a if a.dtype.kind == "f" else to_float01(a)
        if a.ndim not in (2, 3) or a.shape[0] < 1 or a.shape[1] < 1:
            raise ValueError(f"image must be (H, W) or (H, W, C) with H, W >= 1, got shape {a.shape}")
        planes = a[:, :, None] if a.ndim == 2 else a
        C = planes.shape[2]
        if C not in (1, 2, 3, 4):
            raise ValueError(f"image must have 1 to 4 channels, got {C}")
        colour = planes[:, :, : 1 if C <= 2 else 3]
        if data_ranges is None:
            finite = np.where(np.isfinite(colour), colour, np.nan)
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN channel: its range is NaN
                data_ranges = channel_ranges(np.nanmin(finite, axis=(0, 1)), np.nanmax(finite, axis=(0, 1)))
        pixels = replace(self, science=ScienceOptions())  # the network on data in [0, 1]
        try:
            out = upscale_channels(colour, lambda unit: pixels(unit, on_tile), self.scale,
                                   data_ranges=data_ranges, **asdict(self.science))
        except BlankImageError:
            raise BlankImageError("every pixel is NaN or inf: no finite range to map into the network's [0, 1]") from None
        if C in (2, 4):
            alpha = planes[:, :, C - 1]
            if not in_unit_range(alpha):
                raise ValueError("alpha outside [0, 1] or not finite: alpha is taken as coverage in [0, 1]")
            out = np.concatenate([out, np.clip(bicubic(np.float32(alpha), self.scale), 0.0, 1.0)[:, :, None]], axis=2)
        out = out.astype(np.float64 if a.dtype == np.float64 else np.float32)
        return out[:, :, 0] if a.ndim == 2 else out

    def science_data(self, data: np.ndarray, on_tile=None) -> np.ndarray:
        """Science data in physical units, (H, W) or a (..., H, W) cube, each plane mapped from its
        own finite range (science.upscale_science with self.science). Returns (..., sH, sW)."""
        network = self.network(on_tile)
        return upscale_science(data, lambda unit: np.clip(network(unit), 0.0, 1.0), self.scale,
                               **asdict(self.science))

    def tiles(self, shape: tuple, planes: int = 1) -> int:
        """How many network tiles (CPU) a call on an image of `shape` (H, W[, C]) runs, times
        `planes` (a cube's): the number of on_tile calls, for progress bars."""
        t = DEFAULT_TILE if self.tile is None else int(self.tile)
        grown = 2 * edge_margin(self.scale) if self.edges == "replicate" else 0
        per_channel = -(-(shape[0] + grown) * self.scale // t) * -(-(shape[1] + grown) * self.scale // t)
        channels = shape[2] if len(shape) == 3 else 1
        through_net = 1 if channels <= 2 or self.mode == "y" else 3
        return per_channel * through_net * planes

    def provenance(self, source: str) -> dict:
        """What made an output from `source`, as FITS keywords: {KEYWORD: (value, comment)}.

        FITS and XISF outputs carry them (io.header.add_provenance); the viewer reads SRCFLUXU.
        """
        return {"SRCNNVER": (__version__, "srcnn_np version that upscaled this image"),
                "SRCNNSRC": (os.path.basename(os.fspath(source)), "upscaled from this file"),
                "SRCNNSCL": (self.scale, "upscaling factor"),
                "SRCNNWTS": (self.label, "SRCNN weights"),
                "SRCNNMOD": (self.mode, "colour mode: rgb or y (luminance)"),
                "SRCEDGES": (self.edges, "network border: replicate or zero"),
                "SRCSTRCH": (self.science.stretch, "map of the data range onto [0, 1]"),
                "SRCFLUXC": (self.science.conserve_flux, "flux conserved per output block"),
                "SRCFLUXU": (self.science.flux_units, "flux units: surface or total per pixel")}


def needs_mapping(image: np.ndarray, science: ScienceOptions = ScienceOptions()) -> bool:
    """Whether an Upscaler maps `image` into the network's [0, 1] and back rather than taking it
    as it is: float data with a value outside [0, 1] or NaN/inf, or science options that only the
    mapped path has (stretch "asinh", conserve_flux, flux_units "total")."""
    if science != ScienceOptions():
        return True
    a = np.asarray(image)
    return a.dtype.kind == "f" and not in_unit_range(a)


def upscale(image: np.ndarray, weights=None, *, mode: str = DEFAULT_MODE, scale: int = 2,
            tile: int | None = None, device: str = DEFAULT_DEVICE, on_tile=None, edges: str = DEFAULT_EDGES,
            stretch: str = DEFAULT_STRETCH, conserve_flux: bool = False, flux_units: str = DEFAULT_FLUX_UNITS) -> np.ndarray:
    """Super-resolve an image by `scale`: Upscaler.load(weights, scale=scale, ...)(image, on_tile).

    weights: None for the shipped astro weights of `scale`, a path to a weights file, Weights or
    KernelWeights. Every other argument: see Upscaler and options.ScienceOptions.
    Returns (sH, sW) or (sH, sW, C) float32 in [0, 1] (data in physical units: in its units).
    """
    science = ScienceOptions(stretch, conserve_flux, flux_units)
    upscaler = Upscaler.load(weights, scale=scale, mode=mode, tile=tile, device=device, edges=edges, science=science)
    return upscaler(image, on_tile)


CHROMA_BAND_PIXELS = 1 << 16  # output pixels of chroma upsampled and converted to RGB at a time


def upscale_luminance(rgb: np.ndarray, network, scale: int, channels: int = 3) -> np.ndarray:
    """Mode y: the RGB of (network on the BT.601 Y, bicubic Cb and Cr), not clipped.

    rgb (H, W, 3) float32; network (H, W) -> (sH, sW) float32. Returns (sH, sW, channels) float32
    with RGB in [:, :, :3] (further channels left for the caller). The network runs before the
    output is allocated, and chroma is upsampled and converted in bands of CHROMA_BAND_PIXELS:
    no full-size YCbCr image is ever held, so the peak memory stays below mode rgb's.
    """
    luma = network(ycbcr_plane(rgb, 0))
    sH, sW = luma.shape
    out = np.empty((sH, sW, channels), dtype=np.float32)
    out[:, :, 0] = luma
    del luma  # the network's output: free it before the chroma planes are made
    chroma = [ycbcr_plane(rgb, c) for c in (1, 2)]  # (H, W) Cb, Cr
    rows = max(1, min(sH, CHROMA_BAND_PIXELS // sW))
    band = np.empty((rows, sW, 3), dtype=np.float32)  # YCbCr of output rows r0 .. r0 + h
    upsampled = np.empty((rows, sW), dtype=np.float32)
    for r0 in range(0, sH, rows):
        h = min(rows, sH - r0)
        band[:h, :, 0] = out[r0:r0 + h, :, 0]
        for c, plane in enumerate(chroma, start=1):
            kernels.bicubic_window(plane, scale, r0, 0, h, sW, upsampled, 0)
            band[:h, :, c] = upsampled[:h]
        out[r0:r0 + h, :, :3] = ycbcr_to_rgb(band[:h])
    return out


def bicubic(channel: np.ndarray, scale: int) -> np.ndarray:
    """(H, W) float32 -> (sH, sW) float32 plain bicubic upsampling (no network)."""
    return kernels.bicubic_upsample(channel, scale)
