"""Science arrays through the network: dynamic range, blank pixels, flux (numpy only).

The network works on (H, W) float32 images in [0, 1]; science data comes in physical units of any
range, with blank (NaN/inf) pixels, and photometry users want the flux back. `upscale_science`
wraps any `upscale_fn` ((H, W) float32 in [0, 1] -> (sH, sW) float32) so that, plane by plane:

1. Blanks: NaN and +-inf pixels are blank. They are filled for the network by growing the
   surrounding data inward (FILL_ROUNDS rounds of 3x3 averaging of known neighbours, then the
   median of the plane's finite values further in), so no NaN reaches the network and no step at
   the edge of a blank patch makes it ring. Every output pixel of a blank input pixel's s x s
   block is NaN again.
2. Dynamic range: the finite [min, max] of the plane maps linearly onto [0, 1] and the network's
   output maps back with the inverse, in float64, so the result is in the input's units and
   nothing the data holds is clipped by the mapping. A linear map scales ringing and noise by the
   same factor as the signal, so it never amplifies them. stretch="asinh" inserts an invertible
   asinh stretch after the linear map (softening ASINH_SOFTENING) for high dynamic range images,
   where faint structure would otherwise sit at 1e-4 of the network's range.
   A constant plane (min == max) comes back as the same constant without running the network:
   there is nothing to normalise and nothing a network could add.
3. Flux (conserve_flux=True): each s x s output block is shifted by a constant so that its mean
   equals the input pixel exactly (surface brightness preserved). The correction is additive,
   not multiplicative, so it is defined for zero and negative pixels and never divides by a
   block mean near zero.
   flux_units="total" says pixel values are totals per pixel (counts, electrons): the output is
   then divided by s * s, so a block sums to its input pixel (always approximately; exactly with
   conserve_flux). flux_units="surface" (default) keeps values per unit area.

Cubes: data of shape (..., H, W) is processed plane by plane, each with its own range; only the
last two axes are scaled. A plane that is entirely blank comes back entirely NaN; if every plane is
blank, BlankImageError is raised.
"""
from dataclasses import dataclass

import numpy as np

from .options import DEFAULT_FLUX_UNITS, DEFAULT_STRETCH, STRETCHES, ScienceOptions

ASINH_SOFTENING = 0.1  # a in asinh(x / a) / asinh(1 / a), astropy AsinhStretch's default: 3.3x gain at 0
# SRCNN sees 8 output pixels around each pixel (9x9, 5x5, 5x5 convs) and bicubic 2 input pixels
# more: at scale 2 that is 6 input pixels, so 8 rounds of growth cover every blank pixel a valid
# output pixel can see; pixels deeper inside a blank patch only feed outputs that become NaN.
FILL_ROUNDS = 8


class BlankImageError(ValueError):
    """Every pixel of an image (or of every plane of a cube) is NaN or inf."""


class Normalisation:
    """Invertible map between one plane's physical units and the network's [0, 1].

    forward: x -> (x - low) / span (then the asinh stretch if asked), float32.
    inverse: the exact inverse, in float64, for any real input (network outputs may leave [0, 1]).
    """

    def __init__(self, low: float, high: float, stretch: str = DEFAULT_STRETCH):
        if stretch not in STRETCHES:
            raise ValueError(f"stretch must be one of {STRETCHES}, got {stretch!r}")
        if not high > low:
            raise ValueError(f"need high > low to normalise, got low={low}, high={high}")
        self.low, self.span, self.stretch = float(low), float(high) - float(low), stretch

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(H, W) data in physical units -> (H, W) float32, [low, high] onto [0, 1]."""
        unit = (np.asarray(x, dtype=np.float64) - self.low) / self.span
        if self.stretch == "asinh":
            unit = np.arcsinh(unit / ASINH_SOFTENING) / np.arcsinh(1.0 / ASINH_SOFTENING)
        return unit.astype(np.float32)

    def inverse(self, u: np.ndarray) -> np.ndarray:
        """(H, W) network-range values -> (H, W) float64 in physical units."""
        unit = np.array(u, dtype=np.float64)  # a copy we own: updated in place below
        if self.stretch == "asinh":
            unit *= np.arcsinh(1.0 / ASINH_SOFTENING)
            np.sinh(unit, out=unit)
            unit *= ASINH_SOFTENING
        unit *= self.span
        unit += self.low
        return unit


def fill_blanks(plane: np.ndarray, blank: np.ndarray, rounds: int = FILL_ROUNDS) -> np.ndarray:
    """(H, W) data and (H, W) bool blank mask -> (H, W) float64 with every blank pixel filled.

    Known pixels are unchanged. Blank pixels next to known ones take the mean of their known
    3x3 neighbours, ring by ring, for `rounds` rings; any left take the median of the known values.
    Work is proportional to the number of blank pixels, not to the image size.
    """
    if blank.all():
        raise BlankImageError("every pixel is blank (NaN or inf): nothing to upscale")
    # one pixel of padding: blank and never known, so the 3x3 gathers need no bounds checks
    filled = np.pad(np.where(blank, 0.0, plane).astype(np.float64), 1)
    known = np.pad(~blank, 1)
    ys, xs = np.nonzero(blank)
    ys, xs = ys + 1, xs + 1
    for _ in range(rounds):
        if ys.size == 0:
            break
        total = np.zeros(ys.size)
        count = np.zeros(ys.size)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                k = known[ys + dy, xs + dx]
                count += k
                total += np.where(k, filled[ys + dy, xs + dx], 0.0)
        ring = count > 0
        filled[ys[ring], xs[ring]] = total[ring] / count[ring]
        known[ys[ring], xs[ring]] = True
        ys, xs = ys[~ring], xs[~ring]
    filled[ys, xs] = np.median(plane[~blank])
    return filled[1:-1, 1:-1]


def block_view(a: np.ndarray, scale: int) -> np.ndarray:
    """(sH, sW) -> (H, W, s, s) view: [i, j] is the s x s output block of input pixel (i, j)."""
    H, W = a.shape[0] // scale, a.shape[1] // scale
    return a.reshape(H, scale, W, scale).swapaxes(1, 2)


def block_repeat(a: np.ndarray, scale: int) -> np.ndarray:
    """(H, W) -> (sH, sW): every pixel repeated over its s x s block."""
    return np.repeat(np.repeat(a, scale, axis=0), scale, axis=1)


def block_mean(a: np.ndarray, scale: int) -> np.ndarray:
    """(sH, sW) -> (H, W): the mean of every s x s block, in float64."""
    return block_view(a, scale).mean(axis=(2, 3), dtype=np.float64)


def conserve_block_means(upscaled: np.ndarray, source: np.ndarray, scale: int) -> np.ndarray:
    """Shift each s x s block of `upscaled` ((sH, sW) float64, changed in place and returned) by
    the constant that makes its mean equal the matching pixel of `source` ((H, W))."""
    correction = np.asarray(source, dtype=np.float64) - block_mean(upscaled, scale)
    block_view(upscaled, scale)[...] += correction[:, :, None, None]
    return upscaled


def channel_ranges(lows, highs) -> list:
    """Per-channel finite (min, max) -> the (low, high) each channel maps onto [0, 1].

    (0, 1) for every channel when all of them lie within [0, 1] (the network then sees the data
    unchanged, bit for bit), else each channel's own (min, max), as upscale_science maps FITS
    planes. A channel without finite values (min NaN) gets None (it comes back blank).
    """
    known = [(float(lo), float(hi)) for lo, hi in zip(lows, highs)]
    finite = [r for r in known if np.isfinite(r[0])]
    if finite and all(lo >= 0 and hi <= 1 for lo, hi in finite):
        return [(0.0, 1.0) if np.isfinite(lo) else None for lo, _ in known]
    return [r if np.isfinite(r[0]) else None for r in known]


@dataclass
class NetworkPlane:
    """One (H, W) plane in physical units made ready for the network, and what maps it back.

    unit: (H, W) float32 in [0, 1], blanks filled (zeros for a constant or entirely blank plane);
    blank: (H, W) bool, the NaN/inf pixels; filled: (H, W) float64, the data with blanks filled
    (None for an entirely blank plane); norm: the Normalisation, None when the plane is constant
    (low == high) or blank; low: the constant of a constant plane.
    """

    unit: np.ndarray
    blank: np.ndarray
    filled: np.ndarray | None
    norm: Normalisation | None
    low: float


def plane_to_unit(plane: np.ndarray, stretch: str = DEFAULT_STRETCH, data_range: tuple | None = None,
                  allow_blank: bool = False) -> NetworkPlane:
    """(H, W) data in physical units -> NetworkPlane: blanks filled, [low, high] mapped onto [0, 1].

    data_range: (low, high) to map onto [0, 1] instead of the plane's own finite min and max
    (e.g. a whole image's range when the plane is one chunk of it); low == high means constant.
    Raises BlankImageError when every pixel is blank, unless allow_blank (then the plane comes
    back NaN from plane_from_unit).
    """
    plane = np.asarray(plane, dtype=np.float64)
    blank = ~np.isfinite(plane)
    if allow_blank and blank.all():
        return NetworkPlane(np.zeros(plane.shape, np.float32), blank, None, None, np.nan)
    filled = fill_blanks(plane, blank)  # raises BlankImageError when nothing is known
    if data_range is None:
        values = plane[~blank]
        data_range = (values.min(), values.max())
    low, high = float(data_range[0]), float(data_range[1])
    if low == high:
        return NetworkPlane(np.zeros(plane.shape, np.float32), blank, filled, None, low)
    norm = Normalisation(low, high, stretch)
    return NetworkPlane(norm.forward(filled), blank, filled, norm, low)


def plane_from_unit(prepared: NetworkPlane, net_out: np.ndarray, scale: int, *,
                    conserve_flux: bool = False) -> np.ndarray:
    """The network's (sH, sW) output for prepared.unit -> (sH, sW) float64 in the plane's physical
    (surface flux) units, NaN over the s x s block of every blank input pixel."""
    H, W = prepared.blank.shape
    if prepared.norm is None:  # constant or blank: nothing a network could add
        out = np.full((H * scale, W * scale), prepared.low, dtype=np.float64)
    else:
        net_out = np.asarray(net_out)
        if net_out.shape != (H * scale, W * scale):
            raise ValueError(f"upscale_fn returned shape {net_out.shape} for a {(H, W)} plane, "
                             f"expected {(H * scale, W * scale)}")
        if not np.isfinite(net_out).all():
            raise ValueError("upscale_fn returned NaN or inf values")
        out = prepared.norm.inverse(net_out)
        if conserve_flux:
            conserve_block_means(out, prepared.filled, scale)
    block_view(out, scale)[prepared.blank] = np.nan
    return out


def upscale_plane(plane: np.ndarray, upscale_fn, scale: int, *, conserve_flux: bool = False,
                  stretch: str = DEFAULT_STRETCH, data_range: tuple | None = None) -> np.ndarray:
    """One (H, W) plane in physical units -> (sH, sW) float64 in the same units (surface flux
    units), NaN over the s x s block of every blank input pixel.

    data_range: see plane_to_unit. Raises BlankImageError when every pixel of the plane is blank.
    """
    prepared = plane_to_unit(plane, stretch, data_range)
    net_out = upscale_fn(prepared.unit) if prepared.norm is not None else None
    return plane_from_unit(prepared, net_out, scale, conserve_flux=conserve_flux)


def upscale_channels(image: np.ndarray, upscale_fn, scale: int, *, conserve_flux: bool = False,
                     flux_units: str = DEFAULT_FLUX_UNITS, stretch: str = DEFAULT_STRETCH,
                     data_ranges: list | None = None) -> np.ndarray:
    """(H, W, C) data in physical units -> (sH, sW, C) float64 in the same units, each channel
    mapped onto [0, 1] with its own range, all channels through ONE call of upscale_fn.

    The channels-last twin of upscale_science for an upscale_fn that needs every channel at once
    ((H, W, C) float32 in [0, 1] -> (sH, sW, C), e.g. srcnn_np.upscale with mode="y", which mixes
    colour channels into luminance). data_ranges: one (low, high) per channel, or None for each
    channel's finite min and max. An entirely blank channel comes back NaN; BlankImageError when
    every pixel of every channel is blank.
    """
    ScienceOptions(stretch, conserve_flux, flux_units)  # checks the choices
    channels = image.shape[2]
    ranges = data_ranges if data_ranges is not None else [None] * channels
    prepared = [plane_to_unit(image[:, :, c], stretch, ranges[c], allow_blank=True) for c in range(channels)]
    if all(p.filled is None for p in prepared):
        raise BlankImageError("every pixel is blank (NaN or inf): nothing to upscale")
    net_out = upscale_fn(np.stack([p.unit for p in prepared], axis=2))
    out = np.stack([plane_from_unit(p, net_out[:, :, c], scale, conserve_flux=conserve_flux)
                    for c, p in enumerate(prepared)], axis=2)
    if flux_units == "total":
        out /= scale * scale
    return out


def upscale_science(data: np.ndarray, upscale_fn, scale: int, *, conserve_flux: bool = False,
                    flux_units: str = DEFAULT_FLUX_UNITS, stretch: str = DEFAULT_STRETCH) -> np.ndarray:
    """Upscale science data in physical units through a [0, 1] image upscaler.

    data: (H, W) image or (..., H, W) cube, any real dtype, NaN/inf for blank pixels.
    upscale_fn: (H, W) float32 in [0, 1] -> (scale*H, scale*W) float32, e.g.
        ``lambda a: srcnn_np.upscale(a, weights, scale=scale)``.
    scale: the factor upscale_fn applies (>= 1).
    conserve_flux: make each s x s output block average (flux_units="surface") or sum
        (flux_units="total") exactly to its input pixel.
    flux_units: "surface" (values per unit area, kept) or "total" (values per pixel: the output
        is divided by scale**2 so blocks sum to their input pixel).
    stretch: "linear" (default) or "asinh", the map from data range to the network's [0, 1].
    Returns (..., scale*H, scale*W): float64 for float64 data, float32 otherwise; NaN in the
    s x s block of every blank input pixel. Raises BlankImageError if every pixel is blank.
    """
    ScienceOptions(stretch, conserve_flux, flux_units)  # checks the choices
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    scale = int(scale)
    a = np.asarray(data)
    if a.ndim < 2 or a.shape[-2] < 1 or a.shape[-1] < 1:
        raise ValueError(f"data must be (H, W) or (..., H, W) with H, W >= 1, got shape {a.shape}")
    if a.dtype.kind not in "biuf":
        raise TypeError(f"unsupported data dtype {a.dtype}: use integer or float data")
    out_dtype = np.float64 if a.dtype == np.float64 else np.float32
    H, W = a.shape[-2:]
    planes = a.reshape(-1, H, W)
    out = np.empty((planes.shape[0], H * scale, W * scale), dtype=out_dtype)
    blank_planes = 0
    for i, plane in enumerate(planes):
        if not np.isfinite(plane).any() and planes.shape[0] > 1:
            out[i] = np.nan  # a blank channel of a cube stays blank
            blank_planes += 1
            continue
        out[i] = upscale_plane(plane, upscale_fn, scale, conserve_flux=conserve_flux, stretch=stretch)
    if blank_planes == planes.shape[0]:
        raise BlankImageError("every pixel of every plane is blank (NaN or inf): nothing to upscale")
    if flux_units == "total":
        out /= out_dtype(scale * scale)
    return out.reshape(a.shape[:-2] + (H * scale, W * scale))
