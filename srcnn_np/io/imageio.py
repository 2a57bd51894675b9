"""Reading and writing image files: PNG (8/16-bit), JPEG, TIFF; gray, gray+alpha, RGB, RGBA.

Pixels travel as numpy arrays: (H, W) for one channel or (H, W, C) with C = 2 (gray+alpha),
3 (RGB), 4 (RGBA); uint8 or uint16 as stored in the file, float32 for float TIFF (any range, NaN
allowed). Writers take float32 in [0, 1] and quantise to the requested bit depth; a 32-bit float
TIFF keeps float32 samples of any range, and no other format is given data it would clip. Every write is atomic (temp file in the target directory,
then rename) and never replaces an existing file unless asked to.
"""
import contextlib
import logging
import os
import stat
import threading
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .atomic import OutputExistsError, atomic_output
from ..config import MAX_PIXELS_DEFAULT
from ..errors import exists, one_line
from ..options import in_unit_range

SIGNED_INTEGER = 2  # TIFF SampleFormat value
# How outputs are deflated (docs/performance.md#end-to-end-the-cli): PNG with zlib's run-length strategy
# ("rle", or --png-compression 0-9), 16-bit colour TIFF at zlib level 1; both on all cores
PNG_COMPRESSION = "rle"
TIFF_LEVEL = 1


class ImageIOError(ValueError):
    """An image that cannot be read or written; the message is one line, naming the file."""


@dataclass
class LoadedImage:
    pixels: np.ndarray  # (H, W) or (H, W, C) uint8 | uint16 as stored, or float32: XISF in [0, 1],
    # float TIFF as stored (any range, NaN allowed: physical units, see srcnn_np.upscale)
    format: str  # "png", "jpeg", "tiff" or "xisf"
    bit_depth: int  # 8 or 16: what the file stores per sample; 32 for float samples (XISF, TIFF)
    icc_profile: bytes | None = field(default=None, repr=False)  # carried to the output
    metadata: object = field(default=None, repr=False)  # XISF: xisf.XisfMetadata (keywords, properties)


def read_image(path, max_pixels: int = MAX_PIXELS_DEFAULT) -> LoadedImage:
    """Decode an image file, honouring EXIF orientation; raise ImageIOError on any failure
    (MemoryError excepted), with a one-line message naming the file.

    Only regular files are opened (a pipe or device could block forever or never end).
    """
    path = os.fspath(path)
    check_regular_file(path)
    try:
        from . import png

        with quiet_decoders():
            float_tiff = _float_tiff(path, max_pixels)
            if float_tiff is not None:
                return float_tiff
            if png.is_png16(path):
                with open(path, "rb") as f:
                    ihdr = f.read(24)  # signature, IHDR length and type, width, height
                _check_size(path, int.from_bytes(ihdr[16:20], "big"), int.from_bytes(ihdr[20:24], "big"), max_pixels)
                pixels = png.read_png16(path, max_pixels=max_pixels)
                return LoadedImage(pixels, "png", 16)
            return _read_with_pillow(path, max_pixels)
    except ImageIOError:
        raise
    except ImportError as e:  # an optional extra the file needs
        raise ImageIOError(f"{path}: {e}") from None
    except UnidentifiedImageError:
        raise ImageIOError(f"{path}: not a readable image (unknown or corrupt format)") from None
    except OSError as e:
        if e.errno is not None and e.strerror:
            raise ImageIOError(f"{path}: {_os_reason(e)}") from None
        raise ImageIOError(f"{path}: cannot decode image ({one_line(e)})") from None
    except (ValueError, SyntaxError, EOFError) as e:  # what decoders raise for corrupt data
        raise ImageIOError(f"{path}: cannot decode image ({one_line(e)})") from None
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - a decoder tripping over a hostile file (fuzzed: TypeError,
        # KeyError, struct.error...) fails that file, not the batch; __context__ keeps the original
        raise ImageIOError(f"{path}: cannot decode image ({type(e).__name__}: {one_line(e)})") from None


def check_regular_file(path: str) -> None:
    """Raise ImageIOError (one line naming the file) unless path is, after links, a regular file:
    opening a pipe blocks until someone writes to it, a device may never end."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise ImageIOError(f"{path}: {_os_reason(e)}") from None
    if stat.S_ISDIR(mode):
        raise ImageIOError(f"{path}: is a directory")
    if not stat.S_ISREG(mode):
        raise ImageIOError(f"{path}: not a regular file (a pipe, socket or device)")


_quiet = {"lock": threading.Lock(), "depth": 0, "stderr": None, "warnings": None, "tifffile_level": 0}


@contextlib.contextmanager
def quiet_decoders():
    """Silence what decoders say about a corrupt file (Python warnings, tifffile's log, libtiff's and
    astropy's messages on file descriptor 2): the one error line we raise says it, and a batch's
    stderr stays one line per failed file. Process-wide while any thread is inside (a --scheduler
    worker decodes in several threads): the first to enter silences, the last to leave restores."""
    with _quiet["lock"]:
        if _quiet["depth"] == 0:
            _quiet["warnings"] = warnings.catch_warnings()
            _quiet["warnings"].__enter__()
            warnings.simplefilter("ignore")
            tifffile_log = logging.getLogger("tifffile")
            _quiet["tifffile_level"] = tifffile_log.level
            tifffile_log.setLevel(logging.CRITICAL + 1)
            try:
                _quiet["stderr"] = os.dup(2)
            except OSError:  # no stderr at all: nothing to silence there
                _quiet["stderr"] = None
            else:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                os.close(devnull)
        _quiet["depth"] += 1
    try:
        yield
    finally:
        with _quiet["lock"]:
            _quiet["depth"] -= 1
            if _quiet["depth"] == 0:
                if _quiet["stderr"] is not None:
                    os.dup2(_quiet["stderr"], 2)
                    os.close(_quiet["stderr"])
                logging.getLogger("tifffile").setLevel(_quiet["tifffile_level"])
                _quiet["warnings"].__exit__(None, None, None)


def _read_with_pillow(path: str, max_pixels: int) -> LoadedImage:
    saved_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # we apply our own limit (max_pixels), before decoding
    try:
        im = Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = saved_limit
    with im:
        fmt = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "TIFF": "tiff"}.get(im.format)
        if fmt is None:
            raise ImageIOError(f"{path}: unsupported image format {im.format} (use PNG, JPEG or TIFF)")
        _check_size(path, *im.size, max_pixels)
        if fmt == "tiff":
            _refuse_multi_page_tiff(im, path)
        if fmt == "tiff" and SIGNED_INTEGER in _tiff_tag(im, 339) and max(_tiff_tag(im, 258, 8)) <= 8:
            # Pillow would read int8 as uint8 (-1 -> 255); wider signed samples are range-checked below
            raise ImageIOError(f"{path}: signed 8-bit samples are not supported (convert to unsigned, or use FITS)")
        if fmt == "tiff" and max(_tiff_tag(im, 258, 8)) > 8 and im.mode not in ("I;16", "I;16B", "I;16L", "I"):
            from . import tiff_io  # 16-bit colour / float TIFF: Pillow would truncate it

            if max(_tiff_tag(im, 279, 0) + _tiff_tag(im, 325, 0)) > os.path.getsize(path):
                # tifffile would allocate what the StripByteCounts / TileByteCounts claim
                raise ImageIOError(f"{path}: truncated or corrupt TIFF (strips or tiles larger than the file)")

            pixels = tiff_io.read_tiff(path)  # float32 here only from a header _float_tiff could not tell
            return LoadedImage(pixels, "tiff", 32 if pixels.dtype.kind == "f" else 16, im.info.get("icc_profile"))
        icc = im.info.get("icc_profile")
        im = ImageOps.exif_transpose(im)
        pixels, bit_depth = _pillow_pixels(im, path)
    return LoadedImage(pixels, fmt, bit_depth, icc)


def _float_tiff(path: str, max_pixels: int) -> LoadedImage | None:
    """A TIFF of float samples (gray, gray+alpha, RGB, RGBA; float16/32/64, any range, NaN
    allowed) as float32 through tifffile, bit depth 32; None when `path` is no float TIFF. Told from
    the file's header alone, so a missing tifffile gets its install hint (ImportError) for every
    float TIFF, and the size limit applies before decoding."""
    from . import tiff_io

    tags = tiff_io.first_ifd_tags(path)
    if tags is None or not tiff_io.has_float_samples(tags):
        return None
    _check_size(path, tags.get("width", (0,))[0], tags.get("height", (0,))[0], max_pixels)
    if max(tags.get("strip_bytes", (0,)) + tags.get("tile_bytes", (0,))) > os.path.getsize(path):
        # tifffile would allocate what the StripByteCounts / TileByteCounts claim
        raise ImageIOError(f"{path}: truncated or corrupt TIFF (strips or tiles larger than the file)")
    return LoadedImage(tiff_io.read_tiff(path), "tiff", 32)


def _check_size(path: str, width: int, height: int, max_pixels: int) -> None:
    """Refuse an empty image or one of more than max_pixels pixels, from its header, before decoding."""
    if width < 1 or height < 1:
        raise ImageIOError(f"{path}: empty image ({width}x{height})")
    if width * height > max_pixels:
        raise ImageIOError(f"{path}: {width}x{height} = {width * height} pixels exceeds the limit of {max_pixels} "
                           "(raise it with --max-pixels)")


def _refuse_multi_page_tiff(im, path: str) -> None:
    """ImageIOError naming the page count for a TIFF of several images (Pillow would read the
    first alone); previews and masks of the one image are not pages (tiff_io.AUXILIARY_SUBFILE).
    Leaves `im` at its first page."""
    from . import tiff_io

    if im.n_frames == 1:
        return
    images = 0
    for frame in range(im.n_frames):
        im.seek(frame)
        images += not _tiff_tag(im, 254, 0)[0] & tiff_io.AUXILIARY_SUBFILE
    im.seek(0)
    try:
        tiff_io.refuse_multi_page(images)
    except tiff_io.TiffError as e:
        raise ImageIOError(f"{path}: {e}") from None


def _tiff_tag(im, tag: int, default=None) -> tuple:
    """A TIFF tag's values as a tuple (258: BitsPerSample, 339: SampleFormat); (default,) if absent."""
    values = im.tag_v2.get(tag, default)
    return values if isinstance(values, tuple) else (values,)


def _pillow_pixels(im: Image.Image, path: str):
    """A decoded Pillow image -> (pixels uint8 | uint16 array, bit depth)."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(im).astype(np.uint16), 16
    if mode == "I":
        a = np.asarray(im)
        if a.min() < 0 or a.max() > 65535:
            raise ImageIOError(f"{path}: integer samples outside 0..65535 are not supported")
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
    out = np.empty(pixels.shape, dtype=dtype)
    for r in range(0, pixels.shape[0], 256):  # by row blocks: one small float temporary
        scaled = np.multiply(pixels[r:r + 256], np.float32(top), dtype=np.float32)
        np.clip(scaled, 0, top, out=scaled)
        out[r:r + 256] = np.rint(scaled, out=scaled)
    return out


def write_image(path, pixels: np.ndarray, fmt: str, bit_depth: int = 8, *, overwrite: bool = False,
                icc_profile: bytes | None = None, png_compression: int | str = PNG_COMPRESSION,
                threads: int | None = None) -> None:
    """Write (H, W) or (H, W, C) float32 in [0, 1] as `fmt` ("png", "jpeg", "tiff") atomically.

    16-bit is kept for PNG and TIFF; JPEG is always 8-bit and cannot carry alpha (alpha is dropped).
    bit_depth 32: TIFF stores float32 samples as given (any range, NaN: physical units); PNG takes 16.
    Float data outside [0, 1] or with NaN in any other bit depth would be clipped: ImageIOError.
    png_compression is "rle" or a zlib level 0..9 (see png.zlib_options); PNG and 16-bit
    colour TIFF deflate on `threads` threads (default: every CPU this process may use).
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
    float_samples = fmt == "tiff" and bit_depth == 32
    if not float_samples:
        refuse_clipping(path, pixels, fmt)
    data = np.asarray(pixels, dtype=np.float32) if float_samples else quantize(pixels, min(bit_depth, 16))
    try:
        with atomic_output(path, overwrite=overwrite) as tmp:
            with open(tmp, "wb") as f:
                _encode(f, data, fmt, icc_profile, png_compression, threads)
    except OutputExistsError:
        raise ImageIOError(exists(path)) from None
    except ImageIOError:
        raise
    except OSError as e:
        raise ImageIOError(f"{path}: cannot write ({_os_reason(e)})") from None
    except (ValueError, ImportError) as e:
        raise ImageIOError(f"{path}: cannot write ({one_line(e)})") from None


def refuse_clipping(path, pixels: np.ndarray, fmt: str) -> None:
    """ImageIOError (one line) when float pixels hold values outside [0, 1] or NaN, which `fmt`
    (anything but a 32-bit float TIFF) would clip: physical units are never clipped silently."""
    if pixels.dtype.kind == "f" and not in_unit_range(pixels):
        raise ImageIOError(f"{path}: float data outside [0, 1] or with NaN cannot be stored as {fmt.upper()} "
                           "without clipping; write a 32-bit float TIFF (.tif) or FITS")


def _encode(f, data: np.ndarray, fmt: str, icc_profile, png_compression, threads: int | None) -> None:
    """Encode uint8/uint16 (H, W[, C]) pixels (float32: TIFF) into the open binary file f."""
    extra = {"icc_profile": icc_profile} if icc_profile else {}
    if fmt == "png":
        from .png import write_png

        write_png(f, data, compression=png_compression, threads=threads, icc_profile=icc_profile)
        return
    if data.dtype == np.uint16 or data.dtype == np.float32:
        if data.ndim == 3 or data.dtype == np.float32:
            from . import tiff_io

            tiff_io.write_tiff(f, data, level=TIFF_LEVEL, threads=threads)
            return
        Image.fromarray(data).save(f, format="TIFF", compression="tiff_adobe_deflate")
        return
    im = Image.fromarray(data)
    if fmt == "jpeg":
        im.save(f, format="JPEG", quality=95, subsampling=0, **extra)
    else:
        im.save(f, format="TIFF", compression="tiff_adobe_deflate", **extra)


def _os_reason(e: OSError) -> str:
    """'no such file or directory', 'permission denied', ...: the OS's reason without errno or path."""
    return (e.strerror or one_line(e)).lower()
