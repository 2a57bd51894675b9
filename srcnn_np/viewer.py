"""Before/after viewer: one self-contained HTML file comparing bicubic with an SRCNN upscale.

`write_viewer(LOWRES, UPSCALED, "view.html")` reads both images (PNG, JPEG, TIFF, XISF or FITS), computes
the bicubic upsampling of LOWRES at UPSCALED's scale with srcnn_np's own bicubic, and writes one
HTML file holding the page (srcnn_np/data/viewer.html), its script and both images: nothing is
fetched from anywhere, the file opens offline. In the page a slider divides the view: bicubic
left, UPSCALED right, on one canvas with one zoom and pan (down to single pixels, drawn
nearest-neighbour; FITS data bottom-up, as ds9 shows it), and a display stretch (linear or
asinh) over an interval (the full range, the data's min-max, or a percentile clip) that applies
to both sides alike. Two more modes show what the network added: the residual UPSCALED minus
bicubic (of the luminance for RGB) on a diverging colour scale centred on zero, with its own
stretch and symmetric limits (a percentile of |residual|), and blink, which alternates the two
images at the same zoom.

Pixels travel losslessly, as the file stores them: uint8 and uint16 images as Uint8/Uint16 arrays
(bicubic quantised to the same bit depth, as `upscale` would write it), float data (FITS, float
TIFF) as Float32 in physical units, so that the stretch is applied in the browser. Each array is
zlib-compressed, base64-encoded and inflated in the page by the browser's DecompressionStream.
Alpha is dropped; a FITS cube of 3 planes is shown as RGB. Images of more than MAX_VIEW_PIXELS
upscaled pixels are refused (a browser holds every embedded pixel as float32 plus two RGBA
canvases: 2048 x 2048 RGB float data is a ~90 MB page); crop first, or raise the limit.
"""
import base64
import json
import os
import zlib
from dataclasses import dataclass
from importlib import resources

import numpy as np

from .config import MAX_PIXELS_DEFAULT, MAX_VIEW_PIXELS
from .errors import exists, one_line
from .io.atomic import OutputExistsError, atomic_output
from .io.formats import fits_data_as_image, format_of, read_any, split_extension
from .io.imageio import quantize
from .model import bicubic, needs_mapping, to_float01

PERCENTILE_CLIPS = (99.9, 99.5, 99.0)  # astropy PercentileInterval: (100 - p) / 2 % cut at each end
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # BT.601: the residual of an RGB image is shown for its luminance
STATISTICS_SAMPLES = 1_000_000  # values the intervals are computed from (evenly strided)
JS_DTYPES = {np.dtype(np.uint8): "u8", np.dtype("<u2"): "u16", np.dtype("<f4"): "f32"}


class ViewerError(ValueError):
    """Inputs the viewer cannot compare, or an output it cannot write; one line, naming the file."""


@dataclass
class Comparison:
    """What write_viewer compared: the upscaled size, the scale, and the residual UPSCALED minus
    bicubic over every finite sample (all channels), in `units`: its RMS, lowest and highest value."""

    width: int
    height: int
    scale: int
    rms: float
    lowest: float
    highest: float
    units: str


@dataclass
class ViewImage:
    """An image as the viewer shows it: pixels (H, W) gray or (H, W, 3) RGB, alpha dropped.

    pixels: uint8 or uint16 (integer files, as stored) or float32 (physical units, NaN = blank).
    fits_header: the FITS header (astropy Header) for FITS files, else None.
    """

    pixels: np.ndarray
    fits_header: object = None


def is_fits(path) -> bool:
    return format_of(path) == "fits"


def viewer_path(output) -> str:
    """The viewer written beside an upscale output: big/m31_x2.fits.gz -> big/m31_x2_compare.html."""
    stem, _ = split_extension(output)
    return os.path.join(os.path.dirname(os.fspath(output)), stem + "_compare.html")


def read_view_image(path, hdu=None, max_pixels: int = MAX_PIXELS_DEFAULT) -> ViewImage:
    """Read an image file for the viewer (see ViewImage); ViewerError (one line) when it cannot.

    hdu: the FITS HDU (index or EXTNAME; None: the first image HDU). Integer data in FITS, with
    BSCALE/BZERO applied by astropy, becomes float32 like float data.
    """
    path = os.fspath(path)
    try:
        image = read_any(path, max_pixels=max_pixels, hdu=hdu)
        if is_fits(path):
            return ViewImage(fits_planes(image.data, path), image.header)
        pixels = image.pixels
    except ImportError as e:  # astropy or tifffile missing: the hint names the extra
        raise ViewerError(f"{path}: {e}") from None
    except ValueError as e:  # ImageIOError, FitsError: one line naming the file
        raise ViewerError(str(e) if str(e).startswith(path) else f"{path}: {one_line(e)}") from None
    if pixels.dtype.kind == "f":
        pixels = pixels.astype(np.float32)
    if pixels.ndim == 3:  # drop alpha: gray+alpha -> gray, RGBA -> RGB
        pixels = pixels[:, :, 0] if pixels.shape[2] <= 2 else pixels[:, :, :3]
    return ViewImage(pixels)


def fits_planes(data: np.ndarray, path: str) -> np.ndarray:
    """FITS data (..., H, W) -> (H, W) or (H, W, 3) float32 as stored, rows bottom-up (the page
    flips FITS data itself): leading axes of length 1 dropped, a cube of 3 planes taken as RGB."""
    try:
        return np.ascontiguousarray(fits_data_as_image(data)[::-1])
    except ValueError as e:
        raise ViewerError(f"{path}: {e}; the viewer shows one image or 3 planes as RGB") from None


def upscale_factor(lowres: np.ndarray, upscaled: np.ndarray, names: tuple[str, str]) -> int:
    """The integer s >= 2 with upscaled (sH, sW[, C]) and lowres (H, W[, C]); ViewerError otherwise."""
    (h, w), (H, W) = lowres.shape[:2], upscaled.shape[:2]
    scale = H // h
    if scale < 2 or H != scale * h or W != scale * w:
        raise ViewerError(f"{names[1]}: {W}x{H} is not an integer upscale of {names[0]} ({w}x{h})")
    channels = [1 if a.ndim == 2 else a.shape[2] for a in (lowres, upscaled)]
    if channels[0] != channels[1]:
        kinds = ["gray" if c == 1 else "RGB" for c in channels]
        raise ViewerError(f"{names[1]}: {kinds[1]}, but {names[0]} is {kinds[0]}")
    return scale


def bicubic_image(lowres: ViewImage, upscaled: ViewImage, scale: int) -> np.ndarray:
    """srcnn_np's bicubic upsampling of lowres, as `upscale` would have stored it beside upscaled:
    (sH, sW[, 3]) of upscaled's dtype (quantised for integer images; float32 otherwise)."""
    if lowres.fits_header is not None or needs_mapping(lowres.pixels):  # physical units, as upscale maps them
        return physical_bicubic(lowres, upscaled, scale)
    planes = to_float01(lowres.pixels)
    planes = planes[:, :, None] if planes.ndim == 2 else planes
    up = np.stack([bicubic(np.ascontiguousarray(planes[:, :, c]), scale) for c in range(planes.shape[2])], axis=2)
    up = up[:, :, 0] if lowres.pixels.ndim == 2 else up
    if upscaled.pixels.dtype.kind == "u":
        return quantize(up, 8 * upscaled.pixels.dtype.itemsize)
    return up


def physical_bicubic(lowres: ViewImage, upscaled: ViewImage, scale: int) -> np.ndarray:
    """Bicubic of data in physical units (FITS, float images outside [0, 1] or with NaN) the way
    `upscale` treats it: blanks filled for the interpolation and NaN again over their s x s blocks,
    never clipped; divided by s^2 when UPSCALED's provenance keyword SRCFLUXU (model.Upscaler.provenance)
    says flux units total."""
    from .science import upscale_science

    data = lowres.pixels if lowres.pixels.ndim == 2 else lowres.pixels.transpose(2, 0, 1)
    up = upscale_science(data, lambda plane: bicubic(plane, scale), scale)
    up = up if up.ndim == 2 else np.ascontiguousarray(up.transpose(1, 2, 0))
    if upscaled.fits_header is not None and upscaled.fits_header.get("SRCFLUXU") == "total":
        up /= np.float32(scale * scale)
    return up.astype(np.float32)


def display_intervals(images: list[np.ndarray], full_range: tuple[float, float] | None) -> dict:
    """{"full": [lo, hi] (the integer type's range, or the data's min-max for float data),
    "minmax": [lo, hi], "99.5": [lo, hi], ...} over the finite values of all images together,
    in the units of the embedded arrays (integer codes for integer images). Min and max are
    exact; percentiles come from about STATISTICS_SAMPLES evenly strided values."""
    finite = [a[np.isfinite(a)] for a in images]
    finite = [a for a in finite if a.size] or [np.zeros(1)]
    minmax = [float(min(a.min() for a in finite)), float(max(a.max() for a in finite))]
    values = np.concatenate([a[:: max(1, a.size * len(finite) // STATISTICS_SAMPLES)] for a in finite])
    values = values.astype(np.float64)
    intervals = {"full": list(full_range) if full_range else minmax, "minmax": minmax}  # in the menu's order
    for p in PERCENTILE_CLIPS:
        lo, hi = np.percentile(values, [(100 - p) / 2, 100 - (100 - p) / 2])
        intervals[f"{p:g}"] = [float(lo), float(hi)]
    return intervals


def strided_sample(values: np.ndarray) -> np.ndarray:
    """About STATISTICS_SAMPLES evenly strided values of a 1-D array, as float64."""
    return values[:: max(1, values.size // STATISTICS_SAMPLES)].astype(np.float64)


def residual_of(bicubic_pixels: np.ndarray, upscaled_pixels: np.ndarray) -> np.ndarray:
    """UPSCALED minus bicubic, (H, W[, C]) float64 in the arrays' units (NaN where either is)."""
    return upscaled_pixels.astype(np.float64) - bicubic_pixels.astype(np.float64)


def residual_limits(residual: np.ndarray) -> dict:
    """Symmetric display limits L (the residual shown over [-L, L]) of the residual as the page
    draws it (the luminance's, LUMA_WEIGHTS, for RGB): {"maxabs": max |r|, "99.9": the 99.9th
    percentile of |r|, ...} over the finite values (percentiles from a strided sample)."""
    shown = residual @ np.array(LUMA_WEIGHTS) if residual.ndim == 3 else residual
    magnitude = np.abs(shown[np.isfinite(shown)])
    if magnitude.size == 0:
        magnitude = np.zeros(1)
    limits = {"maxabs": float(magnitude.max())}
    sample = strided_sample(magnitude)
    for p in PERCENTILE_CLIPS:
        limits[f"{p:g}"] = float(np.percentile(sample, p))
    return limits


def residual_summary(residual: np.ndarray) -> tuple[float, float, float]:
    """(RMS, lowest, highest) of the residual's finite samples (all channels); zeros if none."""
    finite = residual[np.isfinite(residual)]
    if finite.size == 0:
        return 0.0, 0.0, 0.0
    return float(np.sqrt(np.mean(finite * finite))), float(finite.min()), float(finite.max())


def data_units(dtype: np.dtype, fits_header) -> str:
    """What the embedded values count: integer codes, or a FITS BUNIT (else "data units")."""
    if dtype.kind == "u":
        return f"{8 * dtype.itemsize}-bit codes"
    unit = str(fits_header.get("BUNIT", "")).strip() if fits_header is not None else ""
    return unit or "data units"


def encode_pixels(pixels: np.ndarray) -> str:
    """(H, W[, C]) uint8/uint16/float32 -> base64 of the zlib-compressed little-endian samples."""
    data = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<"))
    return base64.b64encode(zlib.compress(data.tobytes(), 1)).decode("ascii")


def viewer_html(bicubic_pixels: np.ndarray, upscaled_pixels: np.ndarray, *, scale: int,
                names: dict, fits_rows: bool = False, units: str = "data units", residual=None) -> str:
    """The page: viewer.html with the two (H, W[, 3]) images (same shape and dtype) embedded.

    names: {"lowres": file name, "upscaled": file name} for the captions.
    fits_rows: the arrays are FITS data (row 0 at the bottom): shown bottom-up, as ds9 and
    astropy's imshow(origin="lower") show them, the cursor read out in FITS pixel coordinates.
    units: what the values count, for the residual's read-out and colour bar (data_units).
    residual: residual_of(bicubic_pixels, upscaled_pixels) when the caller has it already.
    """
    if residual is None:
        residual = residual_of(bicubic_pixels, upscaled_pixels)
    if fits_rows:
        bicubic_pixels, upscaled_pixels = bicubic_pixels[::-1], upscaled_pixels[::-1]
    dtype = upscaled_pixels.dtype.newbyteorder("<")
    integer = dtype.kind == "u"
    data = {
        "width": int(upscaled_pixels.shape[1]), "height": int(upscaled_pixels.shape[0]),
        "channels": 1 if upscaled_pixels.ndim == 2 else int(upscaled_pixels.shape[2]),
        "dtype": JS_DTYPES[dtype], "scale": scale, "names": names, "fits_rows": fits_rows,
        "intervals": display_intervals([bicubic_pixels, upscaled_pixels],
                                       (0.0, float(np.iinfo(dtype).max)) if integer else None),
        "default": {"stretch": "linear", "clip": "full"} if integer else {"stretch": "asinh", "clip": "99.5"},
        "residual_limits": residual_limits(residual), "units": units,
        "luma": LUMA_WEIGHTS,
        "bicubic": encode_pixels(bicubic_pixels.astype(dtype)),
        "upscaled": encode_pixels(upscaled_pixels.astype(dtype)),
    }
    payload = json.dumps(data).replace("<", "\\u003c")  # no "</script>" inside the script element
    template = resources.files("srcnn_np").joinpath("data/viewer.html").read_text(encoding="utf-8")
    return template.replace("/*VIEWER_DATA*/null", payload)


def write_viewer(lowres_path, upscaled_path, output, *, hdu=None, overwrite: bool = False,
                 max_pixels: int = MAX_VIEW_PIXELS) -> Comparison:
    """Write the viewer comparing bicubic(LOWRES) with UPSCALED to `output`, atomically.

    hdu: LOWRES's FITS HDU (UPSCALED's first image HDU is used: the one `upscale` writes).
    max_pixels: refuse an UPSCALED of more pixels than this (embedding it makes a huge page).
    Returns the Comparison (sizes, and the residual's RMS and extremes). Raises ViewerError (one line) for an
    unreadable input, mismatched shapes or kinds, a too large image, or an existing output
    without overwrite; the output is then untouched.
    """
    lowres_path, upscaled_path, output = os.fspath(lowres_path), os.fspath(upscaled_path), os.fspath(output)
    if not overwrite and os.path.lexists(output):
        raise ViewerError(exists(output))
    if os.path.realpath(output) in (os.path.realpath(lowres_path), os.path.realpath(upscaled_path)):
        raise ViewerError(f"{output}: would replace an input")
    if is_fits(lowres_path) != is_fits(upscaled_path):
        raise ViewerError(f"{upscaled_path}: compare FITS with FITS, and images with images ({lowres_path})")
    lowres = read_view_image(lowres_path, hdu)
    upscaled = read_view_image(upscaled_path, max_pixels=max(max_pixels, MAX_PIXELS_DEFAULT))
    height, width = upscaled.pixels.shape[:2]
    if height * width > max_pixels:
        raise ViewerError(f"{upscaled_path}: {width}x{height} = {width * height} pixels is more than the viewer "
                          f"embeds ({max_pixels}); crop the images, or raise the limit with "
                          "`srcnn-np compare --max-pixels`")
    scale = upscale_factor(lowres.pixels, upscaled.pixels, (lowres_path, upscaled_path))
    try:
        bicubic_pixels = bicubic_image(lowres, upscaled, scale)
    except ValueError as e:  # data bicubic cannot take (NaN in a float TIFF, an all-blank FITS image)
        raise ViewerError(f"{lowres_path}: {one_line(e)}") from None
    units = data_units(upscaled.pixels.dtype, upscaled.fits_header)
    residual = residual_of(bicubic_pixels, upscaled.pixels)
    html = viewer_html(bicubic_pixels, upscaled.pixels, scale=scale,
                       names={"lowres": os.path.basename(lowres_path), "upscaled": os.path.basename(upscaled_path)},
                       fits_rows=lowres.fits_header is not None, units=units, residual=residual)
    try:
        with atomic_output(output, overwrite=overwrite, suffix=".html") as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(html)
    except OutputExistsError:
        raise ViewerError(exists(output)) from None
    except OSError as e:
        raise ViewerError(f"{output}: cannot write ({(e.strerror or one_line(e)).lower()})") from None
    return Comparison(width, height, scale, *residual_summary(residual), units)
