"""Which format a file name means, and one entry point to read and one to write every format.

Formats, by the file name's (possibly double) extension, case-insensitive:

| format | extensions | read / written by |
|---|---|---|
| png  | .png                                  | imageio (Pillow; 16-bit and writing: png) |
| jpeg | .jpg .jpeg                            | imageio (Pillow) |
| tiff | .tif .tiff                            | imageio (Pillow; 16-bit colour and float32 through tiff_io) |
| xisf | .xisf                                 | xisf (the `xisf` package, srcnn_np[xisf]) |
| fits | .fits .fit .fts, + .gz, .fits.fz, .fz | fits_io (astropy, srcnn_np[fits]) |

Two kinds of data travel through them:
- "image" formats (png, jpeg, tiff, xisf): pixels as stored, (H, W) or (H, W, C) uint8 | uint16 |
  float32 (`LoadedImage`; XISF in [0, 1]; float TIFF in any range, NaN allowed, upscaled in
  physical units as srcnn_np.upscale maps float data); they convert among each other, float data
  outside [0, 1] only to float TIFF (nothing else stores it unclipped).
- "fits": physical values of any range plus a FITS header (`FitsImage`), upscaled through
  science.upscale_science; FITS converts to FITS (the compressed flavours included) and to a
  32-bit float TIFF, and float images (float TIFF, XISF) to FITS, physical values kept (see
  fits_data_as_image / image_as_fits_data: FITS rows run bottom-up, image rows top-down).

A new format is one new module with a reader and a writer, and one row in FORMATS below.
"""
import os
from dataclasses import dataclass

import numpy as np

from .imageio import PNG_COMPRESSION, ImageIOError, LoadedImage


@dataclass(frozen=True)
class Format:
    name: str  # "png", "jpeg", "tiff", "xisf" or "fits"
    kind: str  # "image" (pixels in [0, 1] as stored) or "fits" (physical values + header)
    extensions: tuple  # lower case; the first is the one a new output gets


FORMATS = {f.name: f for f in (
    Format("png", "image", (".png",)),
    Format("jpeg", "image", (".jpg", ".jpeg")),
    Format("tiff", "image", (".tif", ".tiff")),
    Format("xisf", "image", (".xisf",)),
    Format("fits", "fits", (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz", ".fits.fz", ".fz")),
)}
EXTENSIONS = {ext: f.name for f in FORMATS.values() for ext in f.extensions}  # ".fits.gz" -> "fits"
# --ext in directory mode: the output file's extension
EXT_CHOICES = {"png": ".png", "tif": ".tif", "jpg": ".jpg", "xisf": ".xisf",
               "fits": ".fits", "fits.gz": ".fits.gz", "fits.fz": ".fits.fz"}


def split_extension(path) -> tuple[str, str]:
    """(stem, extension) of a file name, keeping a known double extension whole:
    'dir/c.fits.fz' -> ('c', '.fits.fz'); unknown ones split like os.path.splitext."""
    name = os.path.basename(os.fspath(path))
    lower = name.lower()
    for ext in sorted(EXTENSIONS, key=len, reverse=True):
        if lower.endswith(ext) and len(name) > len(ext):
            return name[:-len(ext)], name[-len(ext):]
    return os.path.splitext(name)


def format_of(path) -> str | None:
    """'png', 'jpeg', 'tiff', 'xisf' or 'fits' from the file name, else None."""
    return EXTENSIONS.get(split_extension(path)[1].lower())


def kind_of(fmt: str) -> str:
    """'image' or 'fits' (see the module docstring)."""
    return FORMATS[fmt].kind


def read_any(path, *, max_pixels: int | None = None, hdu=None):
    """Read any supported file: LoadedImage for image formats, fits_io.FitsImage for FITS.

    The format comes from the file's contents for png/jpeg/tiff (a mislabelled one still reads)
    and from its extension for XISF and FITS. Raises ImageIOError, xisf.XisfError or
    fits_io.FitsError (all ValueError), one line naming the file.
    """
    from ..config import MAX_PIXELS_DEFAULT

    max_pixels = MAX_PIXELS_DEFAULT if max_pixels is None else max_pixels
    fmt = format_of(path)
    if fmt == "fits":
        from .fits_io import read_fits

        return read_fits(path, hdu)
    if fmt == "xisf":
        from .xisf import read_xisf

        return read_xisf(path, max_pixels=max_pixels)
    from .imageio import read_image

    return read_image(path, max_pixels=max_pixels)


def write_any(path, pixels, fmt: str | None = None, bit_depth: int = 8, *, overwrite: bool = False,
              icc_profile: bytes | None = None, metadata=None, quantize_level: float = 0.0,
              png_compression: int | str = PNG_COMPRESSION, threads: int | None = None) -> None:
    """Write atomically in the format of `fmt` (default: from the name); never replaces an
    existing file unless overwrite.

    Image formats: pixels (H, W) or (H, W, C) float32 in [0, 1]; bit_depth 8 or 16 (integer
    samples) or 32 (float samples: XISF, and TIFF, which then keeps any range and NaN, physical
    units; PNG takes 16 instead, JPEG always 8).
    icc_profile: PNG/JPEG/TIFF; png_compression and threads: PNG/TIFF encoding (see
    imageio.write_image); metadata (e.g. from upscaled_metadata): XISF's xisf.XisfMetadata, or
    FITS's astropy Header.
    FITS: pixels are the data ((H, W) or (..., H, W), any units); .gz / .fz names are gzip / tile
    compressed (quantize_level, see fits_io.write_fits).
    Raises the reader's error type of the format (ValueError), one line naming the file.
    """
    fmt = fmt or format_of(path)
    if fmt == "fits":
        from .fits_io import write_fits

        write_fits(path, pixels, metadata, overwrite=overwrite, quantize_level=quantize_level)
        return
    if fmt == "xisf":
        from .imageio import refuse_clipping
        from .xisf import write_xisf

        refuse_clipping(path, pixels, fmt)  # XISF float samples are written with bounds 0:1

        write_xisf(path, pixels, bit_depth, metadata, overwrite=overwrite)
        return
    if fmt not in FORMATS:
        raise ImageIOError(f"{path}: unknown output format {fmt!r}")
    from .imageio import write_image

    write_image(path, pixels, fmt, bit_depth, overwrite=overwrite, icc_profile=icc_profile,
                png_compression=png_compression, threads=threads)


def upscaled_metadata(image, scale: int, provenance: dict):
    """The metadata of `image` (read by read_any) for its upscale by `scale`, with the provenance
    keywords ({KEYWORD: (value, comment)}) added; None when the format carries none.
    FITS: the HDU's header rescaled and its WCS checked (header.upscaled_header); XISF: its FITS
    keywords the same way, and the properties that carry the pixel scale. Raises
    header.HeaderError (one line) for a header that cannot be rescaled or does not check out."""
    if isinstance(image, LoadedImage):
        if image.metadata is None:
            return None
        from .xisf import upscaled_metadata as upscaled_xisf_metadata

        height, width = image.pixels.shape[:2]
        return upscaled_xisf_metadata(image.metadata, scale, provenance, image_size=(width, height))
    from .header import upscaled_header

    provenance = {**provenance, "SRCNNHDU": (f"{image.hdu_index} ({image.hdu_name})", "HDU upscaled")}
    return upscaled_header(image.header, scale, provenance, image_size=image.data.shape[:-3:-1])


def converted(data: np.ndarray, source_kind: str, fmt: str) -> np.ndarray:
    """Upscaled data laid out for writing as `fmt`: FITS data (planes first, rows bottom-up) into
    an image's pixels (fits_data_as_image) or back (image_as_fits_data) when the kinds differ."""
    if source_kind == kind_of(fmt):
        return data
    return fits_data_as_image(data) if source_kind == "fits" else image_as_fits_data(data)


def fits_data_as_image(data: np.ndarray) -> np.ndarray:
    """FITS data (H, W) or (..., H, W), rows bottom-up -> image pixels (H, W) or (H, W, 3) float32,
    rows top-down (as Siril converts); leading axes of length 1 dropped, a cube of 3 planes taken as
    RGB. ValueError (one line) for other cubes."""
    planes = np.asarray(data).reshape((-1,) + data.shape[-2:])
    if planes.shape[0] not in (1, 3):
        raise ValueError(f"a cube of {planes.shape[0]} planes; an image holds one plane, or 3 as RGB")
    planes = planes[:, ::-1].astype(np.float32)
    return planes[0] if planes.shape[0] == 1 else np.ascontiguousarray(planes.transpose(1, 2, 0))


def image_as_fits_data(pixels: np.ndarray) -> np.ndarray:
    """Image pixels (H, W) or (H, W, C), rows top-down -> FITS data (H, W) or (C', H, W), rows
    bottom-up; alpha (C = 2 or 4) dropped. The inverse of fits_data_as_image."""
    if pixels.ndim == 2:
        return np.ascontiguousarray(pixels[::-1])
    colour = pixels[:, :, : 1 if pixels.shape[2] <= 2 else 3]
    planes = np.ascontiguousarray(colour.transpose(2, 0, 1)[:, ::-1])
    return planes[0] if planes.shape[0] == 1 else planes
