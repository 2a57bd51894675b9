"""Reading and writing image files: PNG (8/16-bit), JPEG, TIFF; gray, gray+alpha, RGB, RGBA.

Pixels travel as numpy arrays: (H, W) for one channel or (H, W, C) with C = 2 (gray+alpha),
3 (RGB), 4 (RGBA); uint8 or uint16 as stored in the file. Writers take float32 in [0, 1] and
quantise to the requested bit depth. Every write is atomic (temp file in the target directory,
then rename) and never replaces an existing file unless asked to.
"""
import os
import tempfile
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS_DEFAULT = 200_000_000
EXTENSIONS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff"}
FORMAT_EXTENSION = {"png": ".png", "jpeg": ".jpg", "tiff": ".tif"}


class ImageIOError(ValueError):
    """An image that cannot be read or written; the message is one line, naming the file."""


@dataclass
class LoadedImage:
    pixels: np.ndarray  # (H, W) or (H, W, C) uint8 | uint16
    format: str  # "png", "jpeg" or "tiff"
    bit_depth: int  # 8 or 16: what the file stores per sample
    icc_profile: bytes | None = field(default=None, repr=False)  # carried to the output


def format_of(path) -> str | None:
    """"png" / "jpeg" / "tiff" from the file name's extension, else None."""
    return EXTENSIONS.get(os.path.splitext(str(path))[1].lower())


def read_image(path, max_pixels: int = MAX_PIXELS_DEFAULT) -> LoadedImage:
    """Decode an image file, honouring EXIF orientation; raise ImageIOError on any failure."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ImageIOError(f"{path}: is a directory")
    try:
        from . import png16

        if png16.is_png16(path):
            pixels = png16.read_png16(path, max_pixels=max_pixels)
            return LoadedImage(pixels, "png", 16)
        return _read_with_pillow(path, max_pixels)
    except ImageIOError:
        raise
    except FileNotFoundError:
        raise ImageIOError(f"{path}: no such file") from None
    except PermissionError:
        raise ImageIOError(f"{path}: permission denied") from None
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise ImageIOError(f"{path}: not a readable image (unknown or corrupt format)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise ImageIOError(f"{path}: cannot decode image ({_one_line(e)})") from None


def _read_with_pillow(path: str, max_pixels: int) -> LoadedImage:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        saved_limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # we apply our own limit, before decoding
        try:
            im = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = saved_limit
    with im:
        fmt = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "TIFF": "tiff"}.get(im.format)
        if fmt is None:
            raise ImageIOError(f"{path}: unsupported image format {im.format} (use PNG, JPEG or TIFF)")
        w, h = im.size
        if w < 1 or h < 1:
            raise ImageIOError(f"{path}: empty image ({w}x{h})")
        if w * h > max_pixels:
            raise ImageIOError(f"{path}: {w}x{h} = {w * h} pixels exceeds the limit of {max_pixels} "
                               "(raise it with --max-pixels)")
        if fmt == "tiff" and max(_tiff_bits(im)) > 8 and im.mode not in ("I;16", "I;16B", "I;16L", "I"):
            from . import tiff_io  # 16-bit colour / float TIFF: Pillow would truncate it

            return LoadedImage(tiff_io.read_tiff(path), "tiff", 16, im.info.get("icc_profile"))
        icc = im.info.get("icc_profile")
        im = ImageOps.exif_transpose(im)
        pixels, bit_depth = _pillow_pixels(im, path)
    return LoadedImage(pixels, fmt, bit_depth, icc)


def _tiff_bits(im) -> tuple:
    bits = im.tag_v2.get(258, (8,))
    return bits if isinstance(bits, tuple) else (bits,)


def _pillow_pixels(im: Image.Image, path: str):
    """A decoded Pillow image -> (pixels uint8 | uint16 array, bit depth)."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(im).astype(np.uint16), 16
    if mode == "I":
        a = np.asarray(im)
        if a.min() < 0 or a.max() > 65535:
            raise ImageIOError(f"{path}: 32-bit integer samples outside 0..65535 are not supported")
        return a.astype(np.uint16), 16
    if mode == "F":
        raise ImageIOError(f"{path}: floating-point image; use FITS or a float TIFF with tifffile installed")
    if mode == "1":
        im = im.convert("L")
    elif mode in ("P", "PA"):
        im = im.convert("RGBA" if (mode == "PA" or "transparency" in im.info) else "RGB")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        im = im.convert("RGBA" if "A" in mode else "RGB")  # CMYK, YCbCr, LAB, HSV, La, RGBa ...
    im.load()
    return np.asarray(im, dtype=np.uint8).copy(), 8


def quantize(pixels: np.ndarray, bit_depth: int) -> np.ndarray:
    """float32 in [0, 1] -> uint8 (bit_depth 8) or uint16 (bit_depth 16), rounded to nearest."""
    top, dtype = (255, np.uint8) if bit_depth == 8 else (65535, np.uint16)
    return np.rint(np.clip(pixels, 0.0, 1.0) * np.float32(top)).astype(dtype)


def write_image(path, pixels: np.ndarray, fmt: str, bit_depth: int = 8, *, overwrite: bool = False,
                icc_profile: bytes | None = None) -> None:
    """Write (H, W) or (H, W, C) float32 in [0, 1] as `fmt` ("png", "jpeg", "tiff") atomically.

    16-bit is kept for PNG and TIFF; JPEG is always 8-bit and cannot carry alpha (alpha is dropped).
    Raises ImageIOError if `path` exists and not `overwrite`, or if writing fails; on failure no
    partial file is left behind and an existing file is untouched.
    """
    path = os.fspath(path)
    if fmt == "jpeg":
        bit_depth = 8
        if pixels.ndim == 3 and pixels.shape[2] in (2, 4):
            pixels = pixels[:, :, :-1]
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    data = quantize(pixels, bit_depth)
    if not overwrite and os.path.lexists(path):
        raise ImageIOError(f"{path}: exists (use --overwrite to replace it)")
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    except OSError as e:
        raise ImageIOError(f"{path}: cannot write ({_one_line(e)})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            _encode(f, data, fmt, icc_profile)
            f.flush()
            os.fsync(f.fileno())
        _commit(tmp, path, overwrite)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, (OSError, ValueError)) and not isinstance(e, ImageIOError):
            raise ImageIOError(f"{path}: cannot write ({_one_line(e)})") from None
        raise


def _encode(f, data: np.ndarray, fmt: str, icc_profile) -> None:
    """Encode uint8/uint16 (H, W[, C]) pixels into the open binary file f."""
    extra = {"icc_profile": icc_profile} if icc_profile else {}
    if data.dtype == np.uint16:
        if fmt == "png":
            from . import png16

            png16.write_png16(f, data)
            return
        if data.ndim == 3:
            from . import tiff_io

            tiff_io.write_tiff(f, data)
            return
        Image.fromarray(data).save(f, format="TIFF", compression="tiff_adobe_deflate")
        return
    im = Image.fromarray(data)
    if fmt == "jpeg":
        im.save(f, format="JPEG", quality=95, subsampling=0, **extra)
    elif fmt == "png":
        im.save(f, format="PNG", compress_level=6, **extra)
    else:
        im.save(f, format="TIFF", compression="tiff_adobe_deflate", **extra)


def _commit(tmp: str, path: str, overwrite: bool) -> None:
    """Move the finished temp file into place; without overwrite, never clobber (link fails if taken)."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # atomic "create only if absent"
    except FileExistsError:
        raise ImageIOError(f"{path}: exists (use --overwrite to replace it)") from None
    except OSError:  # filesystem without hard links
        if os.path.lexists(path):
            raise ImageIOError(f"{path}: exists (use --overwrite to replace it)") from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
